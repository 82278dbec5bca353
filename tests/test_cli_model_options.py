"""The model description options on the command line: flags, config files, labels, warnings, usage errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")

from tiny_models import (  # noqa: E402
    classes_model, normalizing_model, probe_model, timm_config, write_json, write_labels,
)

from fixres_edge.cli import main  # noqa: E402

NAMES = [f"n{i}" for i in range(10)]


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse and usage errors
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"fixres-edge {command}: error: "), err
    return lines[-1]


@pytest.fixture()
def photos(tmp_path):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i, (h, w) in enumerate([(300, 400), (260, 260), (400, 280)]):
        cv2.imwrite(str(folder / f"p{i}.jpg"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return folder


@pytest.fixture()
def plain(tmp_path):
    """A card-less 10-class float model in a folder of its own (no config beside it)."""
    folder = tmp_path / "plain"
    folder.mkdir()
    return classes_model(folder / "model.onnx", num_classes=10)


def classify_json(capsys, *argv):
    code, out, err = run(capsys, "classify", "--json", "--threads", "1", *argv)
    return code, [json.loads(line) for line in out.splitlines()], err


def test_config_flag_describes_the_model(capsys, plain, photos, tmp_path):
    config = write_json(tmp_path / "timm.json", timm_config(240, label_names=NAMES))
    code, records, err = classify_json(capsys, str(photos), "--model", str(plain), "--config", str(config))
    assert code == 0 and err == ""  # stated: no warning
    assert len(records) == 3 and all(r["size"] == 240 and r["top"][0]["label"] in NAMES for r in records)


def test_flags_size_res_labels(capsys, plain, photos, tmp_path):
    labels = write_labels(tmp_path / "names.txt", NAMES)
    common = ("--model", str(plain), "--labels", str(labels), "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5",
              "0.5", "--crop-pct", "0.9", "--interpolation", "bicubic", "--no-antialias")
    code, by_size, err = classify_json(capsys, str(photos / "p0.jpg"), "--size", "64", *common)
    assert code == 0 and err == "" and by_size[0]["size"] == 64 and by_size[0]["top"][0]["label"] in NAMES
    code, by_res, _ = classify_json(capsys, str(photos / "p0.jpg"), "--res", "64", *common)
    assert by_res == [dict(by_size[0], timings_ms=by_res[0]["timings_ms"])]


def test_card_less_model_warns_on_stderr_once(capsys, plain, photos):
    code, records, err = classify_json(capsys, str(photos), "--model", str(plain))
    assert code == 0 and len(records) == 3
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fixres-edge classify: warning: model: no model card")
    assert "assumed size 224, crop_pct 0.875; ImageNet mean/std" in lines[0] and "--mean" in lines[0]
    assert records[0]["top"][0]["label"].startswith("class ")


def test_uint8_model_with_normalization_inside_is_quiet(capsys, tmp_path, photos):
    model = normalizing_model(tmp_path / "pixels.onnx", size=32)
    code, records, err = classify_json(capsys, str(photos), "--model", str(model))
    assert code == 0 and err == "" and len(records) == 3


def test_discovered_config_beside_the_model(capsys, tmp_path, photos):
    folder = tmp_path / "timm_model"
    folder.mkdir()
    model = classes_model(folder / "model.onnx", num_classes=10)
    write_json(folder / "config.json", timm_config(96, label_names=NAMES))
    code, records, err = classify_json(capsys, str(photos), "--model", str(model))
    assert code == 0 and err == "" and records[0]["size"] == 96
    code, out, _ = run(capsys, "inspect", str(model))
    assert code == 0 and "config    config.json (timm)" in out and "from      scales config" in out
    # --no-config ignores the file (and the model then runs on assumed defaults).
    code, records, err = classify_json(capsys, str(photos), "--model", str(model), "--no-config")
    assert code == 0 and records[0]["size"] == 224 and "warning" in err


@pytest.mark.parametrize("config, words", [
    (timm_config(240, mean=(0.5, 0.5)), ["config.json: 'mean' must have 3 values"]),
    (timm_config(0), ["config.json: 'input_size' must be a positive integer, got 0"]),
    (timm_config(240, crop_pct="0.9"), ["'crop_pct' must be a number"]),
    ({"pretrained_cfg": {"input_size": [3, 240, 240], "resize_to": 256}}, ["unknown key 'resize_to'"]),
])
def test_malformed_configs_are_usage_errors(capsys, tmp_path, photos, config, words):
    folder = tmp_path / "m"
    folder.mkdir()
    model = classes_model(folder / "model.onnx", num_classes=10)
    write_json(folder / "config.json", config)
    for argv in (["classify", str(photos)], ["eval", str(photos)], ["inspect"], ["bench", "--quick"],
                 ["calibrate", str(photos)]):
        command = argv[0]
        code, out, err = run(capsys, *argv, "--model", str(model)) if command != "inspect" else run(
            capsys, "inspect", str(model))
        assert code == 2 and out == "", (argv, out)
        line = error_line(err, command)
        assert len(err.strip().splitlines()) == 1 and all(w in line for w in words), err


def test_labels_file_one_line_short_is_a_usage_error(capsys, plain, photos, tmp_path):
    short = write_labels(tmp_path / "short.txt", NAMES[:9])
    code, out, err = run(capsys, "classify", str(photos), "--model", str(plain), "--labels", str(short))
    assert code == 2 and out == ""
    assert error_line(err, "classify").endswith(f"labels file {short} has 9 labels but the model has 10 classes")


@pytest.mark.parametrize("flags, words", [
    (["--mean", "0.5", "0.5"], ["--mean", "expected 3 arguments"]),
    (["--std", "0.5", "nan", "0.5"], ["--std", "finite"]),
    (["--crop-pct", "0"], ["--crop-pct", "(0, 1]"]),
    (["--size", "0"], ["--size", "positive integer"]),
    (["--interpolation", "lanczos"], ["--interpolation", "bilinear"]),
    (["--labels", "missing.txt"], ["--labels missing.txt: not found"]),
    (["--config", "missing.json"], ["--config missing.json: not found"]),
    (["--config", "x.json", "--no-config"], ["not allowed with argument"]),
    (["--std", "0.5", "0", "0.5"], ["'std' must be positive"]),
])
def test_bad_flags_are_usage_errors(capsys, plain, photos, flags, words):
    code, out, err = run(capsys, "classify", str(photos), "--model", str(plain), *flags)
    assert code == 2 and out == ""
    line = error_line(err, "classify")
    assert all(w in line for w in words), line


def test_batch_answers_every_good_file(capsys, plain, photos, tmp_path):
    labels = write_labels(tmp_path / "names.txt", NAMES)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    code, records, err = classify_json(capsys, str(photos), "--model", str(plain), "--labels", str(labels),
                                       "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5", "0.5")
    assert code == 1 and len(records) == 4
    good = [r for r in records if "error" not in r]
    assert len(good) == 3 and all(r["top"][0]["label"] in NAMES for r in good)
    assert [r["path"] for r in records if "error" in r] == [str(photos / "broken.jpg")]


def test_inspect_shows_arguments_and_derived_scales(capsys, plain):
    code, out, err = run(capsys, "inspect", str(plain), "--json", "--size", "240", "--mean", "0.5", "0.5", "0.5",
                         "--std", "0.5", "0.5", "0.5")
    info = json.loads(out)
    assert code == 0 and err == ""
    assert [s["size"] for s in info["default_scales"]] == [208, 240, 272, 304]
    assert info["card_origin"]["train_size"] == "argument" and info["assumed"] == []
    assert info["labels"]["first"] == ["class 0", "class 1", "class 2"]


def test_eval_and_calibrate_take_the_options(capsys, tmp_path):
    # A probe model answers with its input: the options must reach the Classifier unchanged.
    model = probe_model(tmp_path / "probe.onnx")
    from fixres_edge.commands import _model_options
    import argparse

    parser = argparse.ArgumentParser()
    _model_options.add_model_options(parser, size_as="train_size")
    args = parser.parse_args(["--size", "48", "--crop-pct", "1", "--mean", "0", "0", "0", "--std", "1", "1", "1"])
    assert _model_options.classifier_options(args) == {"train_size": 48, "crop_pct": 1.0, "mean": (0.0, 0.0, 0.0),
                                                       "std": (1.0, 1.0, 1.0)}
    args.model, args.command = str(model), "calibrate"
    clf = _model_options.build_classifier(args, threads=1)
    assert clf.card.train_size == 48 and clf.policy.scales[0].size == 48
    assert capsys.readouterr().err == ""
