"""``fixres-edge quantize`` and ``fixres_edge.quantize`` on a tiny float classifier and generated photos:
the int8 model is QDQ, carries the card, agrees with float32; bad inputs are one-line errors; the
input model is never modified."""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
cv2 = pytest.importorskip("cv2")

from cli_runner import run_cli  # noqa: E402
from tiny_images import make_folder  # noqa: E402
from tiny_models import COLOR_CARD as TINY_CARD, color_model  # noqa: E402

from fixres_edge.evaluate import LabeledFolder  # noqa: E402
from fixres_edge.model import CARD_KEY  # noqa: E402
from fixres_edge.quantize import (  # noqa: E402
    CalibrationReader, check_float_model, int8_card, quantize_model, require_onnx, split_calibration,
)
from fixres_edge.runtime import Classifier  # noqa: E402


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return color_model(tmp_path_factory.mktemp("q") / "tiny.onnx")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("photos") / "d", per_class=5)


@pytest.fixture(scope="module")
def quantized(tiny, photos, tmp_path_factory):
    before = digest(tiny)
    out = tmp_path_factory.mktemp("out") / "tiny_int8.onnx"
    report = quantize_model(tiny, out, LabeledFolder(photos, num_classes=3).items, calib_every=3,
                            latency_repeats=2)
    assert digest(tiny) == before  # the input model is only read
    return out, report


def test_int8_model_is_qdq_with_the_card(quantized):
    out, report = quantized
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    card = json.loads({p.key: p.value for p in proto.metadata_props}[CARD_KEY])
    assert card["quantization"] == "int8 QDQ per-channel static"
    assert {k: v for k, v in card.items() if k != "quantization"} == TINY_CARD
    assert report.written and report.calibration == 5 and report.held_out == 10
    assert [s.scale.size for s in report.sizes] == [8, 16, 24]
    # The int8 copy still classifies the colors as the float model does.
    for r in report.sizes:
        assert r.top1_int8 == pytest.approx(r.top1_fp32) and r.changed == 0
        assert r.ms_fp32 > 0 and r.ms_int8 > 0
    json.dumps(report.to_dict())


def test_already_quantised_model_is_refused(quantized, photos, tmp_path):
    out, _ = quantized
    before = digest(out)
    with pytest.raises(ValueError, match="already quantised .*QuantizeLinear|already quantised .*DequantizeLinear") as info:
        quantize_model(out, tmp_path / "again.onnx", LabeledFolder(photos, num_classes=3).items, latency_repeats=0)
    assert "\n" not in str(info.value) and digest(out) == before
    assert not (tmp_path / "again.onnx").exists()


def test_too_few_images(tiny, photos, tmp_path):
    items = LabeledFolder(photos, num_classes=3).items[:6]
    with pytest.raises(ValueError, match="too few images: 6 readable of 6; quantize needs at least 10"):
        quantize_model(tiny, tmp_path / "x.onnx", items, latency_repeats=0)
    assert not (tmp_path / "x.onnx").exists()


def test_unreadable_files_among_good_ones_are_listed_and_left_out(tiny, photos, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in sorted(photos.iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "n00000001_broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "mixed_int8.onnx"
    code, text, err = run_cli(["quantize", str(tiny), str(folder), "--out", str(out), "--repeats", "0",
                               "--calib-every", "3"], capsys)
    assert code == 1 and out.is_file()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fixres-edge quantize: error: ")
    assert "n00000001_broken.png" in lines[0] and "Traceback" not in err
    assert "held out" in text and "wrote" in text


def test_refuses_to_overwrite_the_input(tiny, photos, capsys):
    before = digest(tiny)
    code, _, err = run_cli(["quantize", str(tiny), str(photos), "--out", str(tiny)], capsys)
    assert code != 0 and "input model is never overwritten" in err and len(err.strip().splitlines()) == 1
    assert digest(tiny) == before


def test_not_a_classifier_is_one_line_error(tmp_path, photos, capsys):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "mlp", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    code, _, err = run_cli(["quantize", str(path), str(photos), "--out", str(tmp_path / "o.onnx")], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "mlp.onnx" in err and "Traceback" not in err


def test_missing_onnx_names_the_extra(monkeypatch, tiny, photos, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(RuntimeError, match=r"pip install 'fixres-edge\[quantize\]'"):
        require_onnx()
    code, _, err = run_cli(["quantize", str(tiny), str(photos), "--out", str(tmp_path / "o.onnx")], capsys)
    assert code != 0 and "fixres-edge[quantize]" in err and len(err.strip().splitlines()) == 1


def test_card_less_model_gets_the_preprocessing_it_was_calibrated_with(tmp_path, photos):
    plain = color_model(tmp_path / "plain.onnx", card=None)
    out = tmp_path / "plain_int8.onnx"
    items = LabeledFolder(photos, classes=photos / "classes.tsv").items
    report = quantize_model(plain, out, items, sizes=[16], calib_every=3, latency_repeats=0, crop_pct=0.9,
                            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    card = Classifier(out).card
    assert card.crop_pct == 0.9 and card.mean == (0.0, 0.0, 0.0) and card.std == (1.0, 1.0, 1.0)
    assert card.extra["quantization"] == "int8 QDQ per-channel static"
    assert report.sizes[0].top1_int8 == pytest.approx(report.sizes[0].top1_fp32)


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_methods_calibrate_at_the_training_size(method, tiny, photos, tmp_path):
    """ONNX Runtime's histogram calibrators stack every tensor: mixed sizes (the FixRes scale set,
    8/16/24 here) made them fail; they calibrate at the training size and still compare every size."""
    items = LabeledFolder(photos, num_classes=3).items
    report = quantize_model(tiny, tmp_path / "h.onnx", items, calib_every=3, latency_repeats=0, method=method)
    assert [s.size for s in report.calibration_scales] == [16]
    assert [s.size for s in report.scales] == [8, 16, 24] and len(report.sizes) == 3


def test_json_output_is_one_object_with_a_histogram_method(tiny, photos, tmp_path, capsys):
    """ONNX Runtime's histogram calibrators print progress to stdout; ``--json`` must stay parseable."""
    code, text, _ = run_cli(["quantize", str(tiny), str(photos), "--out", str(tmp_path / "p.onnx"), "--repeats",
                             "0", "--calib-every", "3", "--method", "percentile", "--json"], capsys)
    assert code == 0 and json.loads(text)["method"] == "percentile"


def test_calibration_reader_feeds_what_predict_feeds(tiny, photos):
    clf = Classifier(tiny, threads=1)
    items = LabeledFolder(photos, num_classes=3).items[:2]
    scales = [clf.scale(8), clf.scale(16)]
    reader = CalibrationReader(clf, [i.source for i in items], scales)
    feeds = []
    while (feed := reader.get_next()) is not None:
        feeds.append(feed["image"])
    assert [f.shape for f in feeds] == [(1, 3, 8, 8), (1, 3, 16, 16)] * 2
    image = cv2.imread(str(items[1].source))
    np.testing.assert_array_equal(feeds[3], clf.preprocessed(image, 16))


def test_split_and_checks():
    calib, held = split_calibration(11, 5)
    assert calib.tolist() == [0, 5, 10] and held.size == 8
    with pytest.raises(ValueError, match="calib_every must be an integer >= 2"):
        split_calibration(10, 1)
    from onnx import helper

    graph = helper.make_graph([helper.make_node("QLinearConv", list("abcdefgh"), ["y"])], "g", [], [])
    with pytest.raises(ValueError, match="m.onnx is already quantised"):
        check_float_model(helper.make_model(graph), "m.onnx")
    assert int8_card.__doc__
