"""``fixres-edge classify`` and ``fixres-edge inspect`` (in-process through cli.main, plus one console-script run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("fixres_edge.decode")

from tiny_images import jpeg_bytes  # noqa: E402
from tiny_models import classes_model, probe_model, two_input_model  # noqa: E402

from fixres_edge.cli import main  # noqa: E402
from fixres_edge.commands.classify import expand_paths  # noqa: E402
from fixres_edge.policy import ScalePolicy  # noqa: E402

LABELS = [f"thing number {i}" for i in range(10)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    return classes_model(d / "tiny.onnx", card={
        "name": "tiny", "train_size": 32, "crop_pct": 0.875, "size_stride": 8, "labels": LABELS,
        "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})


@pytest.fixture()
def photos(tmp_path) -> Path:
    """A folder with three JPEGs (mixed-case extensions), a PNG, a non-image and a subfolder."""
    import cv2
    import numpy as np

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.jpg").write_bytes(jpeg_bytes(48, 64, seed=1))
    (folder / "a.JPEG").write_bytes(jpeg_bytes(64, 48, seed=2))
    (folder / "c.jpeg").write_bytes(jpeg_bytes(50, 50, seed=3))
    ok, png = cv2.imencode(".png", np.random.default_rng(4).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    (folder / "d.png").write_bytes(png.tobytes())
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / "e.jpg").write_bytes(jpeg_bytes(40, 60, seed=5))
    return folder


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
@pytest.mark.aarch64
def test_expand_paths(photos):
    names = [Path(p).name for p, err in expand_paths([str(photos)]) if err is None]
    assert names == ["a.JPEG", "b.jpg", "c.jpeg", "d.png"]  # sorted, extension case-insensitive, no .txt
    recursive = [Path(p).name for p, _ in expand_paths([str(photos)], recursive=True)]
    assert recursive == ["a.JPEG", "b.jpg", "c.jpeg", "d.png", "e.jpg"]
    globbed = expand_paths([str(photos / "*.jp*g")])
    assert [Path(p).name for p, _ in globbed] == ["b.jpg", "c.jpeg"]
    assert expand_paths([str(photos / "notes.txt")]) == [(str(photos / "notes.txt"), None)]
    (_, error), = expand_paths([str(photos / "nope.jpg")])
    assert "file not found" in error
    (_, error), = expand_paths([str(photos / "*.gif")])
    assert error.startswith("no files match")


def test_classify_json_lines(tiny, photos, capsys):
    code = main(["classify", str(photos), "--model", str(tiny), "--json", "--topk", "3", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 0 and out.err == ""
    records = json_lines(out.out)
    assert [Path(r["path"]).name for r in records] == ["a.JPEG", "b.jpg", "c.jpeg", "d.png"]
    for r in records:
        assert set(r) == {"path", "top", "size", "timings_ms"}
        assert r["size"] == 32 and len(r["top"]) == 3
        assert {"decode", "preprocess", "infer"} <= set(r["timings_ms"])
        top = r["top"]
        assert [t["label"] for t in top] == [LABELS[t["index"]] for t in top]
        assert [t["prob"] for t in top] == sorted((t["prob"] for t in top), reverse=True)


def test_bad_file_among_good_ones(tiny, photos, capsys):
    bad = photos / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated garbage")
    args = ["classify", str(photos / "a.JPEG"), str(bad), str(photos / "missing.jpg"), str(photos / "b.jpg"),
            "--model", str(tiny), "--json", "--threads", "1"]
    code = main(args)
    out = capsys.readouterr()
    records = json_lines(out.out)
    assert code == 1
    assert [Path(r["path"]).name for r in records] == ["a.JPEG", "broken.jpg", "missing.jpg", "b.jpg"]
    assert "top" in records[0] and "top" in records[3]
    assert set(records[1]) == {"path", "error"} and "\n" not in records[1]["error"]
    assert "not found" in records[2]["error"]
    assert "Traceback" not in out.err


def test_human_table_and_errors_on_stderr(tiny, photos, capsys):
    bad = photos / "broken.jpg"
    bad.write_bytes(b"nope")
    code = main(["classify", str(photos / "b.jpg"), str(bad), str(photos / "d.png"), "--model", str(tiny),
                 "--topk", "2", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 1
    lines = out.out.splitlines()
    assert lines[0].split() == ["path", "rank", "label", "prob", "size", "ms"]
    assert len(lines) == 1 + 2 * 2
    # Aligned: the rank and size columns sit at the same offsets on every row.
    rank_end = lines[0].index("rank") + len("rank")
    assert all(line[rank_end - 1] in "12" for line in lines[1:])
    assert lines[1].startswith(str(photos / "b.jpg")) and lines[3].startswith(str(photos / "d.png"))
    assert any(label in lines[1] for label in LABELS)
    err_lines = out.err.strip().splitlines()
    assert len(err_lines) == 1 and "broken.jpg" in err_lines[0] and "Traceback" not in out.err


def test_glob_and_res(tiny, photos, capsys):
    code = main(["classify", str(photos / "*.jp*g"), "--model", str(tiny), "--res", "40", "--json"])
    records = json_lines(capsys.readouterr().out)
    assert code == 0 and [r["size"] for r in records] == [40, 40]


def test_bad_res_is_one_line_error(tiny, photos, capsys):
    code = main(["classify", str(photos / "b.jpg"), "--model", str(tiny), "--res", "36"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "size 36 is not a multiple of 8 for tiny; valid:" in err and "Traceback" not in err


def test_policy_file(tiny, photos, tmp_path, capsys):
    policy = ScalePolicy(model="tiny", scales=[(24, 0.875), (40, 0.875)], mode="cascade", threshold=1.0)
    path = policy.save(tmp_path / "policy.json")
    code = main(["classify", str(photos / "c.jpeg"), "--model", str(tiny), "--policy", str(path), "--json"])
    record, = json_lines(capsys.readouterr().out)
    assert code == 0 and record["size"] == 40
    assert [s["size"] for s in record["scales"]] == [24, 40] and len(record["per_scale"]) == 2


def test_table_names_the_variant_that_answered(tiny, photos, tmp_path, capsys):
    from fixres_edge.policy import Scale

    (tmp_path / "other.onnx").write_bytes(tiny.read_bytes())
    scales = [Scale(24, 0.875), Scale(40, 0.875, str(tmp_path / "other.onnx"))]
    policy = ScalePolicy(model="tiny", scales=scales, mode="cascade", threshold=1.0)
    path = policy.save(tmp_path / "policy.json")
    code = main(["classify", str(photos / "c.jpeg"), "--model", str(tiny), "--policy", str(path), "--topk", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0].split() == ["path", "rank", "label", "prob", "scale", "ms"]
    # The cascade never stops at 24 (threshold 1.0): the file variant answered, at 40.
    assert lines[1].split()[-3:-1] == ["other", "40"]
    assert lines[0].index("scale") + len("scale") == lines[1].index("other 40") + len("other 40")


def test_res_and_policy_are_exclusive(tiny, capsys):
    with pytest.raises(SystemExit):
        main(["classify", "--model", str(tiny), "--res", "32", "--policy", "p.json"])
    assert "not allowed with" in capsys.readouterr().err


def test_bad_model_is_one_line_error(tmp_path, photos, capsys):
    code = main(["classify", str(photos / "b.jpg"), "--model", str(two_input_model(tmp_path / "two.onnx"))])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("fixres-edge classify: error:") and err.count("\n") == 1
    assert "exactly one image input" in err
    code = main(["classify", str(photos / "b.jpg"), "--model", str(tmp_path / "absent.onnx")])
    assert code == 1 and "model file not found" in capsys.readouterr().err


def test_empty_directory_fails(tiny, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["classify", str(tmp_path / "empty"), "--model", str(tiny), "--json"])
    record, = json_lines(capsys.readouterr().out)
    assert code == 1 and record["error"].startswith("no image files")


def test_demo_photo(tiny, capsys):
    pytest.importorskip("matplotlib")
    code = main(["classify", "--model", str(tiny), "--json", "--topk", "1"])
    record, = json_lines(capsys.readouterr().out)
    assert code == 0 and Path(record["path"]).name == "grace_hopper.jpg"


def test_demo_photo_without_matplotlib(tiny, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code = main(["classify", "--model", str(tiny)])
    err = capsys.readouterr().err
    assert code == 1 and "pip install fixres-edge[demo]" in err and err.count("\n") == 1


@pytest.mark.aarch64
def test_inspect_tiny_models(tmp_path, tiny, capsys):
    assert main(["inspect", str(tiny), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["usable"] and info["image_input"]["layout"] == "NCHW" and info["num_classes"] == 10
    assert info["valid_sizes"] == [24, 32, 40] and info["card"]["name"] == "tiny"
    assert [s["size"] for s in info["default_scales"]] == [24, 32, 40]  # FixRes rule, stride 8
    static = probe_model(tmp_path / "static.onnx", layout="NHWC", dtype="uint8", size=8, batch=1)
    assert main(["inspect", str(static)]) == 0
    out = capsys.readouterr().out
    assert "NHWC uint8, size 8" in out and "card      none" in out and "8@1, 8@0.875, 8@0.75" in out
    assert main(["inspect", str(two_input_model(tmp_path / "two.onnx"))]) == 1
    out = capsys.readouterr().out
    assert "input     image" in out and "input     mask" in out and "unusable" in out


def test_inspect_bundled(capsys, bundled_model):
    assert main(["inspect"]) == 0
    out = capsys.readouterr().out
    assert "sizes     160, 192, 224, 256, 288, 320 (multiples of 32)" in out
    assert "192@0.875, 224@0.875, 256@0.875, 288@0.875" in out


def test_console_script(tiny, photos):
    script = Path(sys.executable).with_name("fixres-edge")
    if not script.exists():
        pytest.skip("console script not installed (pip install -e .)")
    bad = photos / "zz_broken.jpg"
    bad.write_bytes(b"garbage")
    env = dict(os.environ, PYTHONWARNINGS="error")
    run = subprocess.run([str(script), "classify", str(photos), "--model", str(tiny), "--json", "--threads", "1"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 1, run.stderr
    records = json_lines(run.stdout)
    assert len(records) == 5 and sum("error" in r for r in records) == 1
    assert "Traceback" not in run.stderr
