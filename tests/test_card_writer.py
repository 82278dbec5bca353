"""``fixres-edge card``: a validated card written into a copy of the model; the input is never touched."""
from __future__ import annotations

import hashlib
import json
import sys

import pytest

pytest.importorskip("onnx")

from tiny_models import classes_model, hf_processor_config, timm_config, write_json, write_labels  # noqa: E402

from fixres_edge.cli import main  # noqa: E402
from fixres_edge.model import ModelCard, load_model  # noqa: E402

NAMES = [f"n{i}" for i in range(10)]


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def model(tmp_path):
    return classes_model(tmp_path / "model.onnx", num_classes=10)


def test_card_from_a_timm_config_and_set(capsys, tmp_path, model):
    before = digest(model)
    config = write_json(tmp_path / "config.json", timm_config(240, test=288, label_names=NAMES))
    out = tmp_path / "with_card.onnx"
    code, text, err = run(capsys, "card", str(model), "--from", str(config), "--set", "size_stride=16",
                          "--set", "name=tiny240", "--out", str(out))
    assert code == 0 and err == "" and f"card written to {out}" in text
    assert digest(model) == before
    card = load_model(out).card
    assert (card.name, card.train_size, card.crop_pct, card.size_stride) == ("tiny240", 240, 0.9, 16)
    assert card.labels == tuple(NAMES) and card.scales == (208, 240, 272, 288, 304)
    code, shown, _ = run(capsys, "inspect", str(out))
    assert code == 0 and "train_size     240" in shown and "name           tiny240" in shown
    assert "labels: 10 from the model card" in shown and "config    none" in shown


def test_set_overrides_the_existing_card_and_null_removes(capsys, tmp_path):
    carded = classes_model(tmp_path / "carded.onnx", num_classes=10,
                           card={"name": "old", "train_size": 32, "interpolation": "nearest"})
    out = tmp_path / "new.onnx"
    code, text, _ = run(capsys, "card", str(carded), "--set", "interpolation=bicubic", "--set", "name=null",
                        "--set", "mean=[0.5, 0.5, 0.5]", "--json", "--out", str(out))
    assert code == 0
    written = json.loads(text)["card"]
    assert written == {"train_size": 32, "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5]}
    assert load_model(out).card == ModelCard.from_dict(written)


def test_labels_file_is_checked_relative_to_the_new_model(capsys, tmp_path, model):
    write_labels(tmp_path / "names.txt", NAMES)
    out = tmp_path / "labeled.onnx"
    code, _, _ = run(capsys, "card", str(model), "--set", "labels_file=names.txt", "--out", str(out))
    assert code == 0 and load_model(out).labels == tuple(NAMES)


def test_hf_processor_config(capsys, tmp_path, model):
    config = write_json(tmp_path / "preprocessor_config.json", hf_processor_config(256, 224))
    out = tmp_path / "hf.onnx"
    assert run(capsys, "card", str(model), "--from", str(config), "--out", str(out))[0] == 0
    card = load_model(out).card
    assert card.train_size == 224 and int(224 / card.crop_pct) == 256


@pytest.mark.parametrize("argv, words", [
    (["--set", "crop_pct=2"], ["crop_pct", "(0, 1]"]),
    (["--set", "mean=[0.5, 0.5]"], ["mean", "3 values"]),
    (["--set", "train_size=0"], ["train_size", "positive integer"]),
    (["--set", "sizes=224"], ["--set sizes: unknown card field", "valid: name"]),
    (["--set", "crop_pct"], ["expected KEY=VALUE"]),
    (["--set", "layout=NHWC"], ["layout NHWC", "NCHW"]),
    (["--set", "num_classes=7"], ["'num_classes' is 7", "10 outputs"]),
    (["--set", "labels_file=short.txt"], ["9 labels but the model has 10 classes"]),
    (["--set", "labels_file=none.txt"], ["none.txt"]),
    (["--set", "scales=[224, 250]", "--set", "size_stride=32"], ["size 250", "multiple of 32"]),
    (["--from", "bad.json"], ["bad.json: 'image_mean' must have 3 values"]),
    (["--from", "missing.json"], ["--from missing.json: not found"]),
    ([], ["the card would be empty"]),
])
def test_bad_cards_are_usage_errors_and_nothing_is_written(capsys, tmp_path, model, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    write_labels(tmp_path / "short.txt", NAMES[:9])
    write_json(tmp_path / "bad.json", hf_processor_config(image_mean=[0.5, 0.5]))
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "card", str(model), *argv, "--out", str(tmp_path / "new.onnx"))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fixres-edge card: error: ")
    assert all(w in lines[0] for w in words), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_out_must_not_be_the_input_or_an_existing_file(capsys, tmp_path, model):
    before = digest(model)
    for out in (str(model), str(tmp_path / "." / "model.onnx")):
        code, _, err = run(capsys, "card", str(model), "--set", "train_size=32", "--out", out)
        assert code == 2 and "is the input model" in err
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"keep me")
    code, _, err = run(capsys, "card", str(model), "--set", "train_size=32", "--out", str(existing))
    assert code == 2 and "exists; use --force" in err and existing.read_bytes() == b"keep me"
    code, _, _ = run(capsys, "card", str(model), "--set", "train_size=32", "--out", str(existing), "--force")
    assert code == 0 and load_model(existing).card.train_size == 32
    assert digest(model) == before


def test_without_onnx_the_error_names_the_extra(capsys, tmp_path, model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    code, out, err = run(capsys, "card", str(model), "--set", "train_size=32", "--out", str(tmp_path / "new.onnx"))
    assert code == 1 and out == ""
    assert err.strip() == "fixres-edge card: error: writing a card needs the onnx package: pip install 'fixres-edge[card]'"
    assert not (tmp_path / "new.onnx").exists()
