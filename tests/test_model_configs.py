"""timm and Hugging Face config files mapped onto model card fields; the FixRes scale set for any training size."""
from __future__ import annotations

import json

import pytest

from fixres_edge.configs import (
    ConfigError, ModelConfig, card_with_config, config_from_dict, discover_config, find_configs, load_config,
    merge_configs,
)
from fixres_edge.model import ModelCard
from fixres_edge.policy import Scale, default_scales, fixres_sizes

TIMM_NESTED = {  # the shape of timm's hub config.json (values of a made-up model)
    "architecture": "tiny", "num_classes": 10, "num_features": 3, "global_pool": "avg",
    "pretrained_cfg": {"tag": "t", "custom_load": False, "input_size": [3, 240, 240],
                       "test_input_size": [3, 288, 288], "fixed_input_size": False, "interpolation": "bicubic",
                       "crop_pct": 0.9, "test_crop_pct": 1.0, "crop_mode": "center", "mean": [0.5, 0.5, 0.5],
                       "std": [0.25, 0.25, 0.25], "num_classes": 1000, "pool_size": [8, 8],
                       "first_conv": "conv_stem", "classifier": "classifier", "license": "apache-2.0"},
}
HF_PROCESSOR = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True,
                "do_rescale": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
                "image_processor_type": "BitImageProcessor", "image_std": [0.229, 0.224, 0.225], "resample": 3,
                "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 256}}


def one_line_error(data, *words, where="cfg.json"):
    with pytest.raises(ConfigError) as e:
        config_from_dict(data, where)
    text = str(e.value)
    assert "\n" not in text and text.startswith(where), text
    for word in words:
        assert word in text, (word, text)
    return text


def with_cfg(**changes):
    data = json.loads(json.dumps(TIMM_NESTED))
    for key, value in changes.items():
        if value is None:
            data["pretrained_cfg"].pop(key, None)
        else:
            data["pretrained_cfg"][key] = value
    return data


def with_hf(**changes):
    data = dict(HF_PROCESSOR)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


# ------------------------------------------------------------------------------------------------
# timm
def test_timm_nested_maps_every_preprocessing_field():
    config = config_from_dict(TIMM_NESTED, "config.json")
    card = config.card
    assert (card.train_size, card.crop_pct, card.interpolation) == (240, 0.9, "bicubic")
    assert card.mean == (0.5, 0.5, 0.5) and card.std == (0.25, 0.25, 0.25)
    # The top-level num_classes is the model's head (pretrained_cfg's is the pretrained one).
    assert card.num_classes == 10
    # test_input_size joins the scale set derived from the training size; test_crop_pct is kept.
    assert card.scales == (208, 240, 272, 288, 304)
    assert card.extra == {"test_crop_pct": 1.0}
    assert config.sources == ("config.json (timm)",)
    assert {"architecture", "tag", "pool_size", "first_conv", "classifier", "license"} <= set(config.ignored)
    assert config.notes == ()


def test_timm_flat_config_and_label_names():
    names = [f"n{i}" for i in range(4)]
    flat = {"architecture": "tiny", "input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bilinear",
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "num_classes": 4, "label_names": names}
    card = config_from_dict(flat).card
    assert card.train_size == 224 and card.labels == tuple(names) and card.num_classes == 4
    assert card.scales is None  # no test size: the default set is derived later


def test_timm_fixed_input_size_keeps_one_size():
    assert config_from_dict(with_cfg(fixed_input_size=True)).card.scales == (240,)


def test_timm_id2label_from_the_hf_timm_wrapper():
    data = with_cfg()
    data.update(model_type="timm_wrapper", architectures=["TimmWrapperForImageClassification"],
                id2label={str(i): f"c{i}" for i in range(10)}, label2id={f"c{i}": i for i in range(10)})
    assert config_from_dict(data).card.labels == tuple(f"c{i}" for i in range(10))


def test_timm_crop_mode_squash_is_a_note():
    config = config_from_dict(with_cfg(crop_mode="squash"), "config.json")
    assert len(config.notes) == 1 and "squash" in config.notes[0] and "config.json" in config.notes[0]


@pytest.mark.parametrize("changes, words", [
    ({"mean": [0.5, 0.5]}, ["'mean'", "3 values", "2"]),
    ({"std": [0.5, 0.0, 0.5]}, ["'std'", "positive"]),
    ({"std": "0.5"}, ["'std'", "list of 3"]),
    ({"crop_pct": "0.9"}, ["'crop_pct'", "number", "'0.9'"]),
    ({"crop_pct": 1.2}, ["'crop_pct'", "(0, 1]"]),
    ({"input_size": [3, 0, 0]}, ["'input_size'", "positive", "0"]),
    ({"input_size": [3, 240, 320]}, ["'input_size'", "240x320", "square"]),
    ({"input_size": [1, 240, 240]}, ["'input_size'", "1 channels"]),
    ({"input_size": 240}, ["'input_size'", "[3, height, width]"]),
    ({"interpolation": "lanczos"}, ["'interpolation'", "lanczos", "bilinear, bicubic, nearest"]),
    ({"crop_mode": "left"}, ["'crop_mode'", "center"]),
    ({"num_classes": 0}, ["'num_classes'", "positive"]),
    ({"fixed_input_size": "no"}, ["'fixed_input_size'", "true or false"]),
    ({"label_offset": 1}, ["'label_offset'", "only 0"]),
    ({"resize_mode": "longest"}, ["unknown key 'resize_mode'", "input_size"]),
    ({"input_size": None}, ["test_input_size", "need 'input_size'"]),
])
def test_timm_malformed_values_are_one_line_errors(changes, words):
    one_line_error(with_cfg(**changes), *words)


def test_timm_contradictions_are_errors():
    data = with_cfg()
    data["input_size"] = [3, 256, 256]
    one_line_error(data, "'input_size'", "top level", "pretrained_cfg")
    one_line_error({"input_size": [3, 8, 8], "label_names": ["a", "b"], "num_classes": 3},
                   "'label_names'", "2 names", "'num_classes' is 3")


# ------------------------------------------------------------------------------------------------
# Hugging Face image processors
def test_hf_shortest_edge_and_center_crop():
    config = config_from_dict(HF_PROCESSOR, "preprocessor_config.json")
    card = config.card
    assert (card.train_size, card.interpolation) == (224, "bicubic")
    assert card.crop_pct == pytest.approx(0.875) and int(224 / card.crop_pct) == 256
    assert card.mean == (0.485, 0.456, 0.406) and card.std == (0.229, 0.224, 0.225)
    assert config.ignored == ("image_processor_type",) and config.notes == ()


@pytest.mark.parametrize("crop, resize", [(224, 248), (224, 256), (384, 438), (9, 14), (17, 25), (34, 50)])
def test_hf_crop_pct_reproduces_the_resize_exactly(crop, resize):
    card = config_from_dict(with_hf(crop_size={"height": crop, "width": crop},
                                    size={"shortest_edge": resize})).card
    assert int(crop / card.crop_pct) == resize


def test_hf_convnext_crop_pct_and_warp():
    convnext = with_hf(do_center_crop=None, crop_size=None, crop_pct=0.875, size={"shortest_edge": 224})
    card = config_from_dict(convnext).card
    assert (card.train_size, card.crop_pct) == (224, 0.875)
    # From 384 up the ConvNeXt processor warps to a square: approximated, and said.
    warped = config_from_dict(dict(convnext, size={"shortest_edge": 384}))
    assert (warped.card.train_size, warped.card.crop_pct) == (384, 1.0) and "squash" in warped.notes[0]


def test_hf_squash_resize_is_approximated_with_a_note():
    vit = with_hf(do_center_crop=None, crop_size=None, size={"height": 224, "width": 224}, resample=2)
    config = config_from_dict(vit, "preprocessor_config.json")
    assert (config.card.train_size, config.card.crop_pct, config.card.interpolation) == (224, 1.0, "bilinear")
    assert len(config.notes) == 1 and "224" in config.notes[0]


def test_hf_legacy_integer_sizes():
    card = config_from_dict(with_hf(size=256, crop_size=224)).card
    assert card.train_size == 224 and int(224 / card.crop_pct) == 256


def test_hf_rescale_and_normalize_fold_into_mean_std():
    # (x * r - m) / s with r = 1: in [0, 1] units mean = m / 255, std = s / 255.
    card = config_from_dict(with_hf(do_rescale=False, image_mean=[127.0] * 3, image_std=[128.0] * 3)).card
    assert card.mean == pytest.approx((127 / 255,) * 3) and card.std == pytest.approx((128 / 255,) * 3)
    plain = config_from_dict(with_hf(do_normalize=False)).card
    assert plain.mean == (0.0, 0.0, 0.0) and plain.std == (1.0, 1.0, 1.0)
    # A scalar mean/std applies to every channel, as HF processors accept.
    assert config_from_dict(with_hf(image_mean=0.5, image_std=0.5)).card.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("changes, words", [
    ({"image_mean": [0.5, 0.5]}, ["'image_mean'", "3 values"]),
    ({"image_std": [0.5, 0.5, 0.0]}, ["'image_std'", "positive"]),
    ({"size": {"shortest_edge": 0}}, ["'size.shortest_edge'", "positive", "0"]),
    ({"size": {"height": 0, "width": 0}}, ["'size.height'", "0"]),
    ({"size": {"height": 224, "width": 256}}, ["'size'", "224x256"]),
    ({"size": {"longest_edge": 224}}, ["'size'", "shortest_edge"]),
    ({"size": "256"}, ["'size'", "integer or an object"]),
    ({"crop_size": {"height": 300, "width": 300}}, ["'crop_size' 300", "larger than 'size' 256"]),
    ({"crop_size": None}, ["'do_center_crop'", "no 'crop_size'"]),
    ({"resample": 1}, ["'resample'", "1 (LANCZOS)", "0 (nearest), 2 (bilinear), 3 (bicubic)"]),
    ({"resample": "bicubic"}, ["'resample'", "Pillow resampling number"]),
    ({"rescale_factor": 0}, ["'rescale_factor'", "positive"]),
    ({"do_resize": False}, ["'do_resize'", "false"]),
    ({"do_pad": True}, ["'do_pad'"]),
    ({"do_center_crop": "yes"}, ["'do_center_crop'", "true or false"]),
    ({"crop_pct": 0.9}, ["'crop_pct'", "'do_center_crop'"]),
    ({"image_std": None}, ["'image_std' is missing"]),
    ({"do_random_resize": True}, ["unknown key 'do_random_resize'"]),
])
def test_hf_malformed_values_are_one_line_errors(changes, words):
    one_line_error(with_hf(**changes), *words)


def test_hf_model_config_gives_labels_only():
    data = {"model_type": "vit", "architectures": ["ViTForImageClassification"], "image_size": 224,
            "hidden_size": 192, "id2label": {"1": "dog", "0": "cat"}}
    config = config_from_dict(data, "config.json")
    assert config.card.labels == ("cat", "dog") and config.card.num_classes == 2
    assert config.card.train_size is None and "image_size" in config.ignored
    one_line_error({"model_type": "vit", "id2label": {"0": "cat", "2": "dog"}}, "'id2label'", "0..1")


@pytest.mark.parametrize("data, words", [
    ([1, 2, 3], ["JSON object", "list"]),
    ({"architecture": "x"}, ["no preprocessing keys"]),
])
def test_not_a_config(data, words):
    one_line_error(data, *words)


# ------------------------------------------------------------------------------------------------
# Files
def test_load_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^config.json: not valid JSON"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)


def test_discovery_reads_and_merges_the_files_beside_a_model(tmp_path):
    model = tmp_path / "m.onnx"
    assert find_configs(model) == () and discover_config(model) is None
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(HF_PROCESSOR), encoding="utf-8")
    hf_model = {"model_type": "bit", "id2label": {str(i): f"c{i}" for i in range(3)}}
    (tmp_path / "config.json").write_text(json.dumps(hf_model), encoding="utf-8")
    assert [p.name for p in find_configs(model)] == ["config.json", "preprocessor_config.json"]
    config = discover_config(model)
    assert config.card.labels == ("c0", "c1", "c2") and config.card.train_size == 224
    assert len(config.sources) == 2 and len(config.paths) == 2


def test_merging_files_that_disagree_is_an_error():
    a = config_from_dict(TIMM_NESTED, "config.json")
    b = config_from_dict(HF_PROCESSOR, "preprocessor_config.json")
    with pytest.raises(ConfigError, match="disagree on 'train_size': 240 vs 224"):
        merge_configs([a, b])


def test_card_fields_win_over_the_config():
    config = config_from_dict(TIMM_NESTED, "config.json")
    card, origin = card_with_config(ModelCard(train_size=256, mean=(0.1, 0.2, 0.3)), config)
    assert card.train_size == 256 and card.mean == (0.1, 0.2, 0.3) and card.crop_pct == 0.9
    assert origin["train_size"] == "card" and origin["crop_pct"] == "config"
    assert card_with_config(ModelCard(), None) == (ModelCard(), {})
    assert isinstance(config, ModelConfig)


# ------------------------------------------------------------------------------------------------
# FixRes scale set for any training size
@pytest.mark.parametrize("train, stride, expected", [
    (224, 32, (192, 224, 256, 288)),
    (240, 32, (208, 240, 272, 304)),
    (260, 32, (228, 260, 292, 324)),
    (384, 32, (320, 384, 448, 480)),
    (240, 16, (208, 240, 272, 304)),
])
def test_fixres_sizes(train, stride, expected):
    assert fixres_sizes(train, stride) == expected


@pytest.mark.parametrize("train", [160, 192, 224, 240, 256, 260, 288, 300, 320, 380, 456, 512])
def test_fixres_sizes_properties(train):
    sizes = fixres_sizes(train, 32)
    assert train in sizes and list(sizes) == sorted(set(sizes))
    assert all((s - train) % 32 == 0 for s in sizes)  # halves like the training size
    assert sizes[0] < train < sizes[-1]
    # About 0.85x to 1.3x of the training size, within one stride.
    assert abs(sizes[0] - 6 / 7 * train) <= 16 and abs(sizes[-1] - 9 / 7 * train) <= 16


def test_fixres_sizes_small_training_sizes():
    # Below about 5 strides the factors round onto fewer sizes; the training size stays in.
    assert fixres_sizes(96, 32) == (96, 128) and fixres_sizes(16, 32) == (16,) and fixres_sizes(16, 8) == (16, 24)


def test_fixres_sizes_rejects_bad_input():
    with pytest.raises(ValueError, match="train_size must be a positive integer, got 0"):
        fixres_sizes(0)
    with pytest.raises(ValueError, match="stride"):
        fixres_sizes(224, 0)


def test_default_scales_follow_the_training_size():
    assert [s.size for s in default_scales(ModelCard(train_size=240, crop_pct=0.9))] == [208, 240, 272, 304]
    assert default_scales(ModelCard(train_size=240))[0] == Scale(208, 0.875)
    # A stated stride that the training size is not a multiple of: sizes stay on the stride.
    assert [s.size for s in default_scales(ModelCard(train_size=240, size_stride=32))] == [192, 256, 288, 320]


def test_suggested_sizes_step_from_the_training_size():
    from fixres_edge.model import valid_sizes

    assert valid_sizes(ModelCard(train_size=240)) == (176, 208, 240, 272, 304, 336)
    assert valid_sizes(ModelCard()) == (160, 192, 224, 256, 288, 320)
    assert valid_sizes(ModelCard(train_size=240, size_stride=32)) == (192, 224, 256, 288, 320)
