"""Collecting calibration scores: the Scores record (validation, confidence, save/load), the scale grid,
and running a tiny model over a labeled folder (bad files and labels listed, not fatal)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from synthetic_scores import A, easy_hard_scores, random_scores  # noqa: E402
from tiny_images import make_folder  # noqa: E402
from tiny_models import color_model  # noqa: E402

from fixres_edge.calibrate import Scores, calibration_scales, collect, reference_scale  # noqa: E402
from fixres_edge.decode import load_image  # noqa: E402
from fixres_edge.evaluate import LabeledFolder, LabeledImage, ListReader  # noqa: E402
from fixres_edge.policy import Scale  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The Scores record
def test_scores_validation_and_margin():
    s = easy_hard_scores(easy=2, hard=1)
    assert s.confidence().tolist()[2] == pytest.approx([0.4, 0.6])
    assert s.confidence("margin")[2].tolist() == pytest.approx([0.1, 0.6 - 0.4 / 3])
    with pytest.raises(ValueError, match="unknown confidence"):
        s.confidence("entropy")
    with pytest.raises(ValueError, match="probs must be"):
        Scores((A,), [0], np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="class indices"):
        Scores((A,), [5], np.zeros((1, 1, 3)))


def test_scores_round_trip(tmp_path):
    s = random_scores()
    back = Scores.load(s.save(tmp_path / "s.npz"))
    assert back.scales == s.scales and back.model == "random"
    np.testing.assert_array_equal(back.probs, s.probs)
    np.testing.assert_array_equal(back.labels, s.labels)
    np.savez(tmp_path / "other.npz", probs=np.zeros(3))
    with pytest.raises(ValueError, match="not a calibration scores file"):
        Scores.load(tmp_path / "other.npz")


# ---------------------------------------------------------------------------------------------
# With a tiny model
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return color_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def classifier(tiny):
    from fixres_edge.runtime import Classifier

    return Classifier(tiny, threads=1)


def test_scale_grid_and_reference(classifier):
    assert calibration_scales(classifier) == (Scale(8), Scale(16), Scale(24))  # the card's scale set
    assert calibration_scales(classifier, sizes=[24, 8, 24]) == (Scale(8), Scale(24))
    assert calibration_scales(classifier, sizes=[16], crop_pcts=[0.75, 1.0]) == (Scale(16, 1.0), Scale(16, 0.75))
    assert reference_scale(classifier) == Scale(16)  # the card's train_size at its crop_pct


def test_collect_matches_the_classifier_and_lists_failures(classifier, tmp_path):
    folder = make_folder(tmp_path / "photos", per_class=2)
    (folder / f"{sorted(p.name for p in folder.glob('*.png'))[0][:9]}_broken.png").write_bytes(b"not a png")
    reader = LabeledFolder(folder, num_classes=3)
    items = [reader.get_next() for _ in range(len(reader))]
    bad_label = LabeledImage(source=np.zeros((20, 20, 3), np.uint8), label=7, name="label seven")
    calls = []
    scales = (Scale(8), Scale(24))
    scores, errors = collect(classifier, ListReader([*items, bad_label]), scales, progress=lambda: calls.append(1))
    assert len(calls) == len(items) + 1  # progress once per image, failed ones too
    assert {name for name, _ in errors} == {next(i.name for i in items if "broken" in i.name), "label seven"}
    assert all("\n" not in message for _, message in errors)
    assert "outside the model's 0..2" in dict(errors)["label seven"]
    good = [i for i in items if "broken" not in i.name]
    assert scores.n == len(good) and scores.scales == scales and scores.model == "tiny"
    assert scores.names == tuple(i.name for i in good)
    np.testing.assert_array_equal(scores.labels, [i.label for i in good])
    for row, item in zip(scores.probs, good):  # what the classifier gives for each decoded file
        image = load_image(item.source)
        for s, scale in enumerate(scales):
            np.testing.assert_allclose(row[s], classifier.probabilities(image, scale)[0], atol=1e-6)


def test_collect_without_any_scorable_image(classifier):
    bad = LabeledImage(source=np.zeros((20, 20, 2), np.uint8), label=0, name="two channels")
    with pytest.raises(ValueError, match="no image could be scored: two channels: "):
        collect(classifier, ListReader([bad]), (Scale(8),))
    with pytest.raises(ValueError, match="at least one scale"):
        collect(classifier, ListReader([bad]), ())
