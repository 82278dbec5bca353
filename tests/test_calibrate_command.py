"""The whole calibration on a tiny model: ``calibrate()`` end to end (the written policy evaluates to the
accuracy it reports), a static-size model searched over zoom levels, and ``fixres-edge calibrate``."""
from __future__ import annotations

import itertools
import json
import sys

import pytest

pytest.importorskip("onnx")

from cli_runner import run_cli  # noqa: E402
from tiny_images import color_image, make_folder, wnid  # noqa: E402
from tiny_models import color_model  # noqa: E402

from fixres_edge.calibrate import calibrate, calibration_scales  # noqa: E402
from fixres_edge.evaluate import LabeledFolder, evaluate  # noqa: E402
from fixres_edge.policy import Scale, ScalePolicy  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return color_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("photos") / "d", per_class=6, wrong=2)


def test_calibrate_end_to_end_and_eval_reproduces_it(tiny, folder, tmp_path):
    from fixres_edge.runtime import Classifier

    clf = Classifier(tiny, threads=1)
    reader = LabeledFolder(folder, num_classes=3)
    cal = calibrate(clf, reader, calibration_scales(clf), latency_repeats=3, cv_repeats=2, budget_rel=2.0)
    assert cal.scores.scales == (Scale(8), Scale(16), Scale(24)) and cal.scores.n == 18
    assert cal.policy.accuracy["n"] == 18 and cal.policy.model == "tiny"
    path = cal.policy.save(tmp_path / "p.json")
    # Evaluating the written policy gives the accuracy calibration measured on all images.
    result = evaluate(Classifier(tiny, policy=path, threads=1), LabeledFolder(folder, num_classes=3))
    assert result.summary()["top1"] == pytest.approx(cal.policy.accuracy["top1_in_sample"])
    data = cal.to_dict()
    assert {"pareto", "chosen", "latency_ms", "selection_cv", "best_single"} <= set(data)
    json.dumps(data)


def test_static_model_searches_zoom(tmp_path):
    from fixres_edge.runtime import Classifier

    card = {"name": "tiny-static", "labels": ["red", "green", "blue"], "train_size": 16, "crop_pct": 0.875,
            "mean": [0, 0, 0], "std": [1, 1, 1]}
    model = color_model(tmp_path / "static.onnx", size=16, card=card, center_weight=True)
    clf = Classifier(model, threads=1)
    scales = calibration_scales(clf)
    assert scales == (Scale(16, 1.0), Scale(16, 0.875), Scale(16, 0.75))
    assert calibration_scales(clf, crop_pcts=[0.9, 1.0]) == (Scale(16, 1.0), Scale(16, 0.9))
    with pytest.raises(ValueError, match="static size 16"):
        calibration_scales(clf, sizes=[24])
    root = tmp_path / "photos"
    root.mkdir()
    for k, (center, ring) in enumerate(itertools.product(["red", "green", "blue"], repeat=2)):
        cv2_write(root / f"{wnid(['red', 'green', 'blue'].index(center))}_{k:02d}.png",
                  color_image(center, 48, 64, seed=k, border=ring))
    (root / "classes.tsv").write_text("wnid\n" + "\n".join(wnid(i) for i in range(3)) + "\n")
    cal = calibrate(clf, LabeledFolder(root, num_classes=3), scales, latency_repeats=2, cv_repeats=2)
    singles = {c.scales[0].crop_pct: c.top1 for c in cal.search.candidates if c.kind == "single"}
    assert singles[0.75] >= singles[1.0]  # zooming in finds the (center) object
    assert cal.search.train_scale == Scale(16, 0.875)


def cv2_write(path, image):
    import cv2

    cv2.imwrite(str(path), image)


# ---------------------------------------------------------------------------------------------
# CLI
def test_cli_calibrate(tiny, folder, tmp_path, capsys):
    out_policy, plot, saved = tmp_path / "p.json", tmp_path / "pareto.png", tmp_path / "s.npz"
    code, out, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--sizes", "8", "16", "24",
                              "--repeats", "2", "--cv-repeats", "2", "--out", str(out_policy), "--plot", str(plot),
                              "--save-scores", str(saved)], capsys)
    assert code == 0, err
    assert "top-1 (CV)" in out and "<- chosen" in out and "policy   written to" in out
    assert ScalePolicy.load(out_policy).model == "tiny"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli(["calibrate", "--from-scores", str(saved), "--model", str(tiny), "--repeats", "2",
                              "--budget-rel", "1.5", "--json", "--all"], capsys)
    data = json.loads(out)
    assert code == 0 and data["n"] == 18 and data["budget_ms"] == pytest.approx(1.5 * data["train_cost_ms"])
    assert {"pareto", "chosen", "policy", "latency_ms", "seconds"} <= set(data)


def test_cli_calibrate_errors(tiny, folder, tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["calibrate", "--model", str(tiny)], capsys)
    assert code == 1 and "give a DIR" in err
    code, _, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--sizes", "12"], capsys)
    assert code == 1 and "not a multiple of 8" in err
    code, _, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--budget-ms", "0.000001",
                            "--repeats", "1", "--cv-repeats", "1", "--limit", "4"], capsys)
    assert code == 1 and "below the cheapest scale" in err and err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--plot", str(tmp_path / "x.png")],
                           capsys)
    assert code == 1 and "pip install 'fixres-edge[plot]'" in err and err.count("\n") == 1


def test_calibrate_arguments(tiny, folder):
    from fixres_edge.runtime import Classifier

    clf = Classifier(tiny, threads=1)
    with pytest.raises(ValueError, match="not both"):
        calibrate(clf, None, budget_ms=1.0, budget_rel=1.0)
    with pytest.raises(ValueError, match="budget_rel must be positive"):
        calibrate(clf, None, budget_rel=0.0)
    with pytest.raises(ValueError, match="a reader or saved scores"):
        calibrate(clf, None)
