"""Classifier on models it knows nothing about: config files, labels, the assumed-preprocessing warning,
settings precedence (argument, policy, card, config, defaults) and the derived FixRes scale set."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")

from tiny_models import (  # noqa: E402
    classes_model, hf_processor_config, normalizing_model, probe_model, timm_config, write_json, write_labels,
)

from fixres_edge.model import ConfigError  # noqa: E402
from fixres_edge.policy import Scale, ScalePolicy  # noqa: E402
from fixres_edge.constants import IMAGENET_MEAN  # noqa: E402
from fixres_edge.runtime import Classifier  # noqa: E402
from fixres_edge.settings import PreprocessingWarning  # noqa: E402

NAMES = [f"n{i}" for i in range(10)]


def bgr(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def quiet(*args, **kwargs) -> Classifier:
    """A Classifier whose construction must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return Classifier(*args, **kwargs)


@pytest.fixture()
def timm_folder(tmp_path):
    """A card-less 10-class NCHW float model trained at 240, with a timm config.json beside it."""
    model = classes_model(tmp_path / "model.onnx", num_classes=10)
    write_json(tmp_path / "config.json", timm_config(240, test=288, label_names=NAMES))
    return model


# ------------------------------------------------------------------------------------------------
# Config files
def test_card_less_model_picks_up_its_config(timm_folder):
    clf = quiet(timm_folder, threads=1)
    assert clf.policy.scales == (Scale(240, 0.9),)
    assert (clf.settings.interpolation, clf.settings.mean) == ("bicubic", (0.5, 0.5, 0.5))
    assert clf.settings.origin == {"scales": "config", "interpolation": "config", "antialias": "default",
                                   "mean": "config", "std": "config", "crop": "default"}
    assert clf.labels == tuple(NAMES) and clf.labels_source == "config.json (timm)"
    assert clf.config.sources == ("config.json (timm)",) and clf.model.card.is_empty
    p = clf.predict(bgr(300, 400), topk=3)
    assert p.top[0].label in NAMES and p.size == 240


def test_config_argument_and_no_config(tmp_path, timm_folder):
    other = write_json(tmp_path / "other.json", hf_processor_config(256, 224, resample=2))
    clf = quiet(timm_folder, config=other)
    assert clf.policy.scales[0].size == 224 and clf.settings.interpolation == "bilinear"
    assert clf.labels[0] == "class 0"  # the HF processor has no labels; the folder's config is not read
    with pytest.warns(PreprocessingWarning, match="assumed size 224, crop_pct 0.875; ImageNet mean/std"):
        plain = Classifier(timm_folder, config=False)
    assert plain.config is None and plain.settings.mean == IMAGENET_MEAN


def test_a_card_turns_discovery_off_and_wins_over_an_explicit_config(tmp_path):
    model = classes_model(tmp_path / "carded.onnx", num_classes=10, card={"train_size": 32, "crop_pct": 1.0})
    write_json(tmp_path / "config.json", timm_config(240, label_names=NAMES))
    clf = quiet(model)
    assert clf.config is None and clf.policy.scales == (Scale(32, 1.0),)
    explicit = quiet(model, config=tmp_path / "config.json")
    assert explicit.policy.scales == (Scale(32, 1.0),)  # card over config
    assert explicit.settings.origin["scales"] == "card" and explicit.settings.origin["mean"] == "config"
    assert explicit.labels == tuple(NAMES)


def test_precedence_argument_policy_card_config_default(tmp_path):
    # A probe returns its input: the size and normalization it was fed are visible.
    model = probe_model(tmp_path / "probe.onnx", card={"crop_pct": 1.0})
    write_json(tmp_path / "config.json", timm_config(16, crop_pct=0.5, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    clf = quiet(model, config=tmp_path / "config.json")
    assert clf.policy.scales == (Scale(16, 1.0),)  # train_size from the config, crop_pct from the card
    image = bgr(16, 16, seed=3)
    raw = clf.logits(image, 16)[0].reshape(3, 16, 16)
    rgb = image[..., ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(raw, (rgb - 0.5) / 0.5, atol=2e-6)
    by_policy = quiet(model, config=tmp_path / "config.json", policy=ScalePolicy.single(8, 1.0))
    assert by_policy.policy.scales == (Scale(8, 1.0),) and by_policy.settings.origin["scales"] == "policy"
    by_argument = quiet(model, config=tmp_path / "config.json", policy=ScalePolicy.single(8, 1.0), size=24,
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert by_argument.policy.scales == (Scale(24, 1.0),)
    assert by_argument.settings.origin["mean"] == "argument"
    np.testing.assert_allclose(by_argument.logits(image, 16)[0].reshape(3, 16, 16), rgb, atol=2e-6)


def test_hf_folder_with_model_config_and_processor(tmp_path):
    model = classes_model(tmp_path / "model.onnx", num_classes=3)
    write_json(tmp_path / "preprocessor_config.json", hf_processor_config(256, 224))
    write_json(tmp_path / "config.json", {"model_type": "bit", "id2label": {"0": "cat", "1": "dog", "2": "owl"}})
    clf = quiet(model)
    assert clf.labels == ("cat", "dog", "owl") and clf.policy.scales[0].size == 224
    assert int(224 / clf.policy.scales[0].crop_pct) == 256


def test_malformed_config_is_one_line(tmp_path):
    model = classes_model(tmp_path / "model.onnx", num_classes=10)
    write_json(tmp_path / "config.json", timm_config(240, mean=(0.5, 0.5)))
    with pytest.raises(ConfigError) as e:
        Classifier(model)
    assert str(e.value) == "config.json: 'mean' must have 3 values (R, G, B), got 2: [0.5, 0.5]"


def test_config_approximation_warns(tmp_path):
    model = classes_model(tmp_path / "model.onnx", num_classes=10)
    write_json(tmp_path / "preprocessor_config.json",
               {"do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2, "image_mean": [0.5] * 3,
                "image_std": [0.5] * 3})
    with pytest.warns(PreprocessingWarning, match="squash resize to 32 is approximated") as caught:
        clf = Classifier(model)
    assert len(caught) == 1 and clf.policy.scales == (Scale(32, 1.0),)


# ------------------------------------------------------------------------------------------------
# The warning when nothing states the preprocessing
def test_card_less_float_model_warns_once_in_one_line(tmp_path):
    model = classes_model(tmp_path / "plain.onnx", num_classes=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = Classifier(model, threads=1)
        clf.predict(bgr(300, 400))
        clf.predict(bgr(300, 400, seed=1))
    assert len(caught) == 1 and caught[0].category is PreprocessingWarning
    text = str(caught[0].message)
    assert "\n" not in text and text.startswith("plain: ")
    for words in ("size 224", "crop_pct 0.875", "ImageNet mean/std", "--mean", "config.json", "fixres-edge card"):
        assert words in text


def test_what_is_stated_is_not_warned_about(tmp_path):
    model = classes_model(tmp_path / "plain.onnx", num_classes=10)
    with pytest.warns(PreprocessingWarning) as caught:
        Classifier(model, size=32)
    assert "states its preprocessing; assumed ImageNet mean/std. State it" in str(caught[0].message)
    quiet(model, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), train_size=32)


def test_static_float_model_warns_about_crop_and_normalization(tmp_path):
    model = classes_model(tmp_path / "static.onnx", size=32, num_classes=10)
    with pytest.warns(PreprocessingWarning, match=r"assumed crop_pct 0.875; ImageNet mean/std\."):
        Classifier(model)


def test_uint8_models_need_no_mean_std(tmp_path):
    # Normalization inside the graph, static size: nothing to state, nothing said.
    clf = quiet(normalizing_model(tmp_path / "pixels.onnx", size=32), threads=1)
    assert clf.input.dtype == "uint8" and clf.input.layout == "NHWC"
    assert clf.predict(bgr(40, 50)).size == 32
    # A dynamic uint8 model: the size is assumed, mean/std are not mentioned.
    with pytest.warns(PreprocessingWarning) as caught:
        Classifier(normalizing_model(tmp_path / "pixels_dynamic.onnx"))
    text = str(caught[0].message)
    assert "size 224" in text and "mean" not in text.split("State it")[0]


def test_nhwc_float_with_config_does_not_warn(tmp_path):
    model = classes_model(tmp_path / "nhwc.onnx", layout="NHWC", num_classes=10)
    write_json(tmp_path / "config.json", timm_config(32, label_names=NAMES))
    clf = quiet(model, threads=1)
    assert clf.input.layout == "NHWC" and clf.predict(bgr(40, 60)).top[0].label in NAMES


# ------------------------------------------------------------------------------------------------
# Labels
def test_labels_argument_file_and_list(tmp_path):
    model = classes_model(tmp_path / "m.onnx", num_classes=10, card={"train_size": 32})
    path = write_labels(tmp_path / "names.txt", NAMES)
    assert quiet(model, labels=path).labels == tuple(NAMES)
    assert quiet(model, labels=str(path)).labels_source == f"labels file {path}"
    assert quiet(model, labels=NAMES[::-1]).labels == tuple(NAMES[::-1])


def test_no_labels_gives_class_numbers(tmp_path):
    clf = quiet(classes_model(tmp_path / "m.onnx", num_classes=20, card={"train_size": 32}), threads=1)
    assert clf.labels[17] == "class 17" and clf.labels_source == "generated"
    assert all(t.label.startswith("class ") for t in clf.predict(bgr(40, 40), topk=5).top)


def test_a_1000_class_model_without_labels_gets_imagenet_names(tmp_path):
    clf = quiet(classes_model(tmp_path / "m.onnx", num_classes=1000, card={"train_size": 32}))
    assert clf.labels[0] == "tench" and len(clf.labels) == 1000 and "ImageNet" in clf.labels_source


def test_labels_of_the_wrong_length_are_one_line_errors(tmp_path):
    model = classes_model(tmp_path / "m.onnx", num_classes=10, card={"train_size": 32})
    short = write_labels(tmp_path / "short.txt", NAMES[:9])
    with pytest.raises(ConfigError) as e:
        Classifier(model, labels=short)
    assert str(e.value) == f"labels file {short} has 9 labels but the model has 10 classes"
    write_json(tmp_path / "config.json", timm_config(32, num_classes=10, label_names=None))
    bad_config = timm_config(32, num_classes=11, label_names=NAMES)
    with pytest.raises(ConfigError, match="'label_names' has 10 names but 'num_classes' is 11"):
        Classifier(model, config=write_json(tmp_path / "bad.json", bad_config))
    with pytest.raises(ConfigError, match="blank line at line 2"):
        Classifier(model, labels=write_labels(tmp_path / "gap.txt", ["a", "", "b"]))
    with pytest.raises(ConfigError, match="labels must be a labels file path or a non-empty list"):
        Classifier(model, labels=[1, 2])


def test_bad_description_arguments_name_the_argument(tmp_path):
    model = classes_model(tmp_path / "m.onnx", num_classes=10, card={"train_size": 32})
    with pytest.raises(ValueError, match="argument 'train_size' must be a positive integer, got 0"):
        Classifier(model, train_size=0)
    with pytest.raises(TypeError, match="config must be a path"):
        Classifier(model, config=5)


# ------------------------------------------------------------------------------------------------
# FixRes scale set around any training size
def test_calibration_searches_around_the_training_size(timm_folder, tmp_path):
    from fixres_edge.calibrate import calibration_scales, reference_scale

    clf = quiet(timm_folder)
    # The config's own hint: the derived set around 240 plus its test_input_size 288.
    assert [s.size for s in calibration_scales(clf)] == [208, 240, 272, 288, 304]
    assert reference_scale(clf) == Scale(240, 0.9)
    plain = classes_model(tmp_path / "plain" / "m.onnx" if (tmp_path / "plain").mkdir() is None else None,
                          num_classes=10)
    stated = quiet(plain, train_size=260, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert [s.size for s in calibration_scales(stated)] == [228, 260, 292, 324]
    assert reference_scale(stated).size == 260 and stated.settings.origin["scales"] == "argument"
