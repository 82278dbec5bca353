"""The config files models are published with, mapped onto :class:`fixres_edge.model.ModelCard` fields.

Two formats are read (pure Python: no ONNX Runtime, no network):

* **timm** ``config.json``: preprocessing under ``pretrained_cfg`` (or at the top level in older
  flat files): ``input_size`` ``[3, H, W]``, ``test_input_size``, ``crop_pct``, ``test_crop_pct``,
  ``crop_mode``, ``interpolation``, ``mean``, ``std``, ``num_classes``, ``fixed_input_size``; class
  names in ``label_names`` (or ``id2label`` in Hugging Face's timm wrapper). The top-level
  ``num_classes`` is the model's head and wins over the one inside ``pretrained_cfg``.
* **Hugging Face image processors** ``preprocessor_config.json``: ``size`` (``shortest_edge``, or
  ``height``/``width``, or a bare int), ``crop_size``, ``do_center_crop``, ``do_resize``,
  ``image_mean``, ``image_std``, ``resample`` (Pillow's enum: 0 nearest, 2 bilinear, 3 bicubic),
  ``do_rescale``, ``rescale_factor``, ``do_normalize``, and ConvNeXt's ``crop_pct``.

A Hugging Face *model* ``config.json`` (``model_type`` / ``architectures`` and no timm keys)
contributes its class names (``id2label``) only.

How the fields map: the training size is the (crop) size; ``crop_pct`` is crop / resize;
timm's ``test_input_size`` joins the FixRes scale set derived from the training size
(:func:`fixres_edge.policy.fixres_sizes`), and a ``test_crop_pct`` that differs is kept in the card's
``extra`` (calibration searches sizes; try it with ``calibrate --crop-pcts``). HF's rescale and
normalisation fold into ``mean``/``std`` in [0, 1] units: ``(x * r - m) / s`` equals
``(x / 255 - m / (255 r)) / (s / (255 r))``.

Keys that are read are listed above. Keys ignored because they are not about preprocessing:
:data:`IGNORED_KEYS` (e.g. ``architecture``, ``model_type``, ``tag``, ``license``, ``pool_size``,
``first_conv``, ``classifier``, ``num_features``, ``image_processor_type``), and any other key whose
name has nothing to do with images (no ``size``, ``crop``, ``mean``, ``std``, ``interp``,
``resample``, ``resiz``, ``normal``, ``rescale``, ``pad``, ``channel``, ``rgb``, ``bgr``,
``label``, ``class`` in it). Every other unknown key, a wrong type, a wrong length, a size of 0,
or two keys that contradict each other is a one-line :class:`ConfigError` naming the file and key.

Resizes fixres_edge does not do exactly (a squash resize to H x W, a shortest-edge resize with no
crop, timm's ``crop_mode`` "squash"/"border") are approximated by an aspect-preserving resize and
a center crop; each such approximation is recorded in :attr:`ModelConfig.notes` (the Classifier
warns about it).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from fixres_edge.model import ConfigError, ModelCard
from fixres_edge.policy import fixres_sizes

#: File names looked for beside a model, in this order.
CONFIG_NAMES = ("config.json", "preprocessor_config.json")
#: Pillow resampling enum values (what HF's ``resample`` holds) that fixres_edge implements.
PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
_PIL_NAMES = {1: "LANCZOS", 4: "BOX", 5: "HAMMING"}
#: timm ``interpolation`` names that fixres_edge implements.
TIMM_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
TIMM_CROP_MODES = ("center", "squash", "border")
# HF ConvNeXt processors warp instead of cropping from this shortest edge up.
_CONVNEXT_WARP_EDGE = 384

_TIMM_KEYS = ("input_size", "test_input_size", "crop_pct", "test_crop_pct", "crop_mode", "interpolation",
              "mean", "std", "num_classes", "fixed_input_size", "label_names", "id2label", "label_offset")
_HF_KEYS = ("size", "crop_size", "do_center_crop", "do_resize", "image_mean", "image_std", "resample",
            "do_rescale", "rescale_factor", "do_normalize", "crop_pct", "do_convert_rgb", "do_pad")
#: Keys known not to be about preprocessing: read past without a word.
IGNORED_KEYS = frozenset((
    # timm
    "architecture", "tag", "custom_load", "pool_size", "first_conv", "classifier", "license", "origin_url",
    "origin", "paper_ids", "paper_name", "notes", "hf_hub_id", "hf_hub_filename", "url", "file", "source",
    "num_features", "global_pool", "model_args", "label_descriptions", "min_input_size", "description",
    "state_dict",
    # transformers model configs and timm wrappers
    "architectures", "model_type", "label2id", "num_labels", "_name_or_path", "problem_type", "torch_dtype",
    "dtype", "transformers_version", "model_name", "do_pooling", "initializer_range",
    # image processors
    "image_processor_type", "feature_extractor_type", "processor_class", "_processor_class",
    "_valid_processor_keys", "auto_map", "return_tensors", "data_format", "input_data_format",
    "do_reduce_labels", "device",
))
_PREPROCESSING_WORDS = ("size", "crop", "mean", "std", "interp", "resample", "resiz", "normal", "rescale",
                        "pad", "channel", "rgb", "bgr", "label", "class")
# Float fields compared with a tolerance when two files state them.
_FLOAT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ModelConfig:
    """What a config file (or the config files beside a model) says, as card fields.

    Attributes
    ----------
    card : ModelCard
        The stated fields; everything else ``None``.
    sources : tuple of str
        One entry per file read, e.g. ``"config.json (timm)"``.
    paths : tuple of Path
    ignored : tuple of str
        Keys read past (not about preprocessing), sorted.
    notes : tuple of str
        Approximations made (one line each).
    """

    card: ModelCard
    sources: tuple[str, ...] = ()
    paths: tuple[Path, ...] = ()
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return ", ".join(self.sources)


# ---------------------------------------------------------------------- value checks
def _fail(where: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: {key!r} {problem}")


def _positive_int(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, key, f"must be a positive integer, got {value!r}")
    if value < 1:
        raise _fail(where, key, f"must be a positive integer, got {value}")
    return value


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, key, f"must be a number, got {value!r}")
    return float(value)


def _flag(value: Any, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, key, f"must be true or false, got {value!r}")
    return value


def _triple(value: Any, where: str, key: str, positive: bool = False) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3  # HF processors accept one value for all channels
    if not isinstance(value, (list, tuple)):
        raise _fail(where, key, f"must be a list of 3 numbers (R, G, B), got {value!r}")
    if len(value) != 3:
        raise _fail(where, key, f"must have 3 values (R, G, B), got {len(value)}: {list(value)}")
    numbers = tuple(_number(v, where, key) for v in value)
    if positive and any(v <= 0 for v in numbers):
        raise _fail(where, key, f"must be positive, got {list(numbers)}")
    return numbers


def _crop_pct(value: Any, where: str, key: str) -> float:
    crop = _number(value, where, key)
    if not 0.0 < crop <= 1.0:
        raise _fail(where, key, f"must be in (0, 1], got {value!r}")
    return crop


def _square(value: Any, where: str, key: str) -> int:
    """timm's ``[C, H, W]``: a square 3-channel size."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _fail(where, key, f"must be [3, height, width], got {value!r}")
    channels, height, width = (_positive_int(v, where, key) for v in value)
    if channels != 3:
        raise _fail(where, key, f"has {channels} channels; only 3-channel images are supported")
    if height != width:
        raise _fail(where, key, f"is {height}x{width}; only square inputs are supported")
    return height


def _label_names(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value) or not value:
        raise _fail(where, key, "must be a non-empty list of class names")
    return tuple(value)


def _id2label(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, Mapping) or not value:
        raise _fail(where, key, f"must be an object mapping class indices to names, got {value!r}")
    names: dict[int, str] = {}
    for index, name in value.items():
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise _fail(where, key, f"has a key {index!r} that is not a class index") from None
        if not isinstance(name, str):
            raise _fail(where, key, f"maps {index!r} to {name!r}, not a name")
        names[i] = name
    if sorted(names) != list(range(len(names))):
        raise _fail(where, key, f"must cover the indices 0..{len(names) - 1} exactly")
    return tuple(names[i] for i in range(len(names)))


def _check_keys(data: Mapping, known: tuple[str, ...], where: str) -> list[str]:
    """Unknown preprocessing-like keys are errors; return the keys read past."""
    ignored = []
    for key in data:
        if key in known:
            continue
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {key!r} is not a string")
        if key in IGNORED_KEYS or not any(word in key.lower() for word in _PREPROCESSING_WORDS):
            ignored.append(key)
            continue
        raise ConfigError(f"{where}: unknown key {key!r}; keys read: {', '.join(known)}")
    return ignored


def _exact_crop_pct(crop: int, resize: int) -> float:
    """crop / resize, nudged down until ``int(crop / crop_pct) == resize`` holds in floats."""
    pct = crop / resize
    while int(crop / pct) < resize:
        pct = math.nextafter(pct, 0.0)
    return pct


def _with_labels(fields: dict, labels: tuple[str, ...] | None, where: str, key: str) -> None:
    if labels is None:
        return
    count = fields.get("num_classes")
    if count is not None and count != len(labels):
        raise ConfigError(f"{where}: {key!r} has {len(labels)} names but 'num_classes' is {count}")
    fields["labels"] = labels
    fields["num_classes"] = len(labels)


# ---------------------------------------------------------------------- formats
def _timm_fields(data: Mapping, where: str) -> tuple[dict, list[str], list[str]]:
    top = dict(data)
    nested = "pretrained_cfg" in top
    cfg = top.pop("pretrained_cfg") if nested else top
    if not isinstance(cfg, Mapping):
        raise _fail(where, "pretrained_cfg", f"must be an object, got {type(cfg).__name__}")
    ignored = _check_keys(cfg, _TIMM_KEYS, where)
    if nested:
        ignored += _check_keys(top, _TIMM_KEYS, where)
        for key in _TIMM_KEYS:
            if key in top and key in cfg and key not in ("num_classes", "label_names", "id2label") \
                    and top[key] != cfg[key]:
                raise ConfigError(f"{where}: {key!r} is {top[key]!r} at the top level but {cfg[key]!r} in "
                                  f"'pretrained_cfg'")
    if nested and cfg.get("num_classes") is not None:
        _positive_int(cfg["num_classes"], where, "num_classes")  # the pretrained head's; checked, then overridden
    merged = {**cfg, **{k: v for k, v in top.items() if k in _TIMM_KEYS}} if nested else dict(cfg)
    fields: dict[str, Any] = {}
    notes: list[str] = []
    if merged.get("label_offset") not in (None, 0):
        raise _fail(where, "label_offset", f"is {merged['label_offset']!r}; only 0 (no background class) is "
                                           f"supported")
    train = _square(merged["input_size"], where, "input_size") if merged.get("input_size") is not None else None
    if train is not None:
        fields["train_size"] = train
    if merged.get("crop_pct") is not None:
        fields["crop_pct"] = _crop_pct(merged["crop_pct"], where, "crop_pct")
    mode = merged.get("crop_mode")
    if mode is not None:
        if mode not in TIMM_CROP_MODES:
            raise _fail(where, "crop_mode", f"is {mode!r}; valid: {', '.join(TIMM_CROP_MODES)}")
        if mode != "center":
            notes.append(f"{where}: crop_mode {mode!r} is approximated by an aspect-preserving resize and a "
                         f"center crop")
    if merged.get("interpolation") is not None:
        name = merged["interpolation"]
        if name not in TIMM_INTERPOLATIONS:
            raise _fail(where, "interpolation", f"is {name!r}; valid: {', '.join(TIMM_INTERPOLATIONS)}")
        fields["interpolation"] = name
    for key in ("mean", "std"):
        if merged.get(key) is not None:
            fields[key] = _triple(merged[key], where, key, positive=key == "std")
    if merged.get("num_classes") is not None:
        fields["num_classes"] = _positive_int(merged["num_classes"], where, "num_classes")
    fixed = _flag(merged["fixed_input_size"], where, "fixed_input_size") \
        if merged.get("fixed_input_size") is not None else False
    test = _square(merged["test_input_size"], where, "test_input_size") \
        if merged.get("test_input_size") is not None else None
    test_crop = _crop_pct(merged["test_crop_pct"], where, "test_crop_pct") \
        if merged.get("test_crop_pct") is not None else None
    if (test is not None or test_crop is not None) and train is None:
        raise ConfigError(f"{where}: 'test_input_size'/'test_crop_pct' need 'input_size' (the training size)")
    if train is not None:
        if fixed:
            fields["scales"] = (train,)  # e.g. ViTs whose position embeddings fix the size
        elif test is not None:
            fields["scales"] = tuple(sorted(set(fixres_sizes(train)) | {test}))
    if test_crop is not None and test_crop != fields.get("crop_pct"):
        fields["extra"] = {"test_crop_pct": test_crop}
    labels = None
    if merged.get("label_names") is not None:
        labels = _label_names(merged["label_names"], where, "label_names")
        key = "label_names"
    elif merged.get("id2label") is not None:
        labels = _id2label(merged["id2label"], where, "id2label")
        key = "id2label"
    if labels is not None:
        _with_labels(fields, labels, where, key)
    return fields, ignored, notes


def _hf_edge(value: Any, where: str, key: str) -> tuple[str, int]:
    """HF ``size``/``crop_size``: ("shortest_edge", S) or ("square", H)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "int", _positive_int(value, where, key)
    if not isinstance(value, Mapping):
        raise _fail(where, key, f"must be an integer or an object with 'shortest_edge' or 'height'/'width', "
                                f"got {value!r}")
    keys = set(value)
    if keys == {"shortest_edge"}:
        return "shortest_edge", _positive_int(value["shortest_edge"], where, f"{key}.shortest_edge")
    if keys == {"height", "width"}:
        height = _positive_int(value["height"], where, f"{key}.height")
        width = _positive_int(value["width"], where, f"{key}.width")
        if height != width:
            raise _fail(where, key, f"is {height}x{width}; only square inputs are supported")
        return "square", height
    raise _fail(where, key, f"has keys {sorted(keys)}; valid: {{'shortest_edge'}} or {{'height', 'width'}}")


def _hf_fields(data: Mapping, where: str) -> tuple[dict, list[str], list[str]]:
    ignored = _check_keys(data, _HF_KEYS, where)
    fields: dict[str, Any] = {}
    notes: list[str] = []

    def flag(key: str, default: bool) -> bool:
        return default if data.get(key) is None else _flag(data[key], where, key)

    if flag("do_pad", False):
        raise _fail(where, "do_pad", "is true; padding is not supported")
    if not flag("do_resize", True):
        raise _fail(where, "do_resize", "is false; fixres_edge always resizes (state the size with --size)")
    size = _hf_edge(data["size"], where, "size") if data.get("size") is not None else None
    crop = _hf_edge(data["crop_size"], where, "crop_size") if data.get("crop_size") is not None else None
    if crop is not None and crop[0] == "shortest_edge":
        raise _fail(where, "crop_size", "must be 'height'/'width' (or an integer), not 'shortest_edge'")
    center = flag("do_center_crop", crop is not None)
    convnext_pct = _crop_pct(data["crop_pct"], where, "crop_pct") if data.get("crop_pct") is not None else None
    if center and crop is None:
        raise ConfigError(f"{where}: 'do_center_crop' is true but there is no 'crop_size'")
    if convnext_pct is not None and center:
        raise ConfigError(f"{where}: 'crop_pct' and 'do_center_crop' both set the crop; give one")
    if size is not None:
        kind, edge = size
        if kind == "int":
            kind = "shortest_edge" if center else "square"
        if center:
            side = crop[1]
            if side > edge:
                raise ConfigError(f"{where}: 'crop_size' {side} is larger than 'size' {edge}")
            fields["train_size"] = side
            fields["crop_pct"] = _exact_crop_pct(side, edge)
            if kind == "square":
                notes.append(f"{where}: the squash resize to {edge}x{edge} is approximated by an "
                             f"aspect-preserving resize")
        elif convnext_pct is not None and kind == "shortest_edge" and edge < _CONVNEXT_WARP_EDGE:
            fields["train_size"] = edge
            fields["crop_pct"] = convnext_pct
        else:
            fields["train_size"] = edge
            fields["crop_pct"] = 1.0
            what = "squash resize" if kind == "square" or convnext_pct is not None else "resize with no crop"
            notes.append(f"{where}: the {what} to {edge} is approximated by an aspect-preserving resize and a "
                         f"center crop of {edge}")
    elif crop is not None and center:
        fields["train_size"] = crop[1]
    if data.get("resample") is not None:
        value = data["resample"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, "resample", f"must be a Pillow resampling number, got {value!r}")
        if value not in PIL_RESAMPLE:
            name = _PIL_NAMES.get(value, "unknown")
            raise _fail(where, "resample", f"is {value} ({name}); valid: "
                                           + ", ".join(f"{k} ({v})" for k, v in PIL_RESAMPLE.items()))
        fields["interpolation"] = PIL_RESAMPLE[value]
    rescale = 1.0 / 255.0
    if data.get("rescale_factor") is not None:
        rescale = _number(data["rescale_factor"], where, "rescale_factor")
        if rescale <= 0:
            raise _fail(where, "rescale_factor", f"must be positive, got {rescale}")
    if not flag("do_rescale", True):
        rescale = 1.0
    normalize = flag("do_normalize", True)
    mean = _triple(data["image_mean"], where, "image_mean") if data.get("image_mean") is not None else None
    std = _triple(data["image_std"], where, "image_std", positive=True) if data.get("image_std") is not None \
        else None
    if not normalize:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if (mean is None) != (std is None):
        missing = "image_std" if std is None else "image_mean"
        raise ConfigError(f"{where}: {missing!r} is missing (give 'image_mean' and 'image_std' together)")
    if mean is not None:
        factor = 1.0 / (255.0 * rescale)
        if abs(factor - 1.0) > 1e-9:
            mean = tuple(m * factor for m in mean)
            std = tuple(s * factor for s in std)
        fields["mean"], fields["std"] = mean, std
    return fields, ignored, notes


def _hf_model_fields(data: Mapping, where: str) -> tuple[dict, list[str], list[str]]:
    fields: dict[str, Any] = {}
    if data.get("id2label") is not None:
        _with_labels(fields, _id2label(data["id2label"], where, "id2label"), where, "id2label")
    ignored = sorted(k for k in data if k != "id2label")
    return fields, ignored, []


_TIMM_MARKERS = ("pretrained_cfg", "input_size", "test_input_size", "crop_mode", "interpolation", "mean", "std")
_HF_MARKERS = ("image_mean", "image_std", "do_resize", "size", "crop_size", "resample", "rescale_factor",
               "do_normalize", "do_rescale", "image_processor_type", "feature_extractor_type")


def config_format(data: Mapping) -> str:
    """``"timm"``, ``"hf-processor"`` or ``"hf-model"``: which format a config object is in."""
    if any(k in data for k in _TIMM_MARKERS):
        return "timm"
    if any(k in data for k in _HF_MARKERS):
        return "hf-processor"
    if any(k in data for k in ("model_type", "architectures", "id2label")):
        return "hf-model"
    raise ConfigError("no preprocessing keys found; expected a timm config.json (pretrained_cfg, input_size, "
                      "mean, std, ...) or a Hugging Face preprocessor_config.json (size, image_mean, ...)")


_FORMAT_NAMES = {"timm": "timm", "hf-processor": "Hugging Face image processor",
                 "hf-model": "Hugging Face model config, labels only"}
_PARSERS = {"timm": _timm_fields, "hf-processor": _hf_fields, "hf-model": _hf_model_fields}


def config_from_dict(data: Any, where: str = "config") -> ModelConfig:
    """Map one parsed config object onto card fields.

    Parameters
    ----------
    data : dict
        The JSON object of a timm ``config.json``, an HF ``preprocessor_config.json``, or an HF model
        ``config.json``.
    where : str
        Name used in error messages (usually the file name).

    Returns
    -------
    ModelConfig

    Raises
    ------
    ConfigError
        One line naming ``where`` and the key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a config must be a JSON object, got {type(data).__name__}")
    try:
        kind = config_format(data)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    fields, ignored, notes = _PARSERS[kind](data, where)
    try:
        card = ModelCard(**fields)
    except ValueError as error:  # e.g. a std of 0 after folding the rescale
        raise ConfigError(f"{where}: {error}") from None
    return ModelConfig(card=card, sources=(f"{where} ({_FORMAT_NAMES[kind]})",), ignored=tuple(sorted(ignored)),
                       notes=tuple(notes))


def load_config(path: str | os.PathLike) -> ModelConfig:
    """Read one config file (timm or Hugging Face format, detected from its keys).

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ConfigError
        Not JSON, or a value the mapping refuses (one line naming the file and the key).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ConfigError(f"config {path} is a directory, not a JSON file")
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path.name}: not valid JSON ({str(error).splitlines()[0]})") from None
    config = config_from_dict(data, where=path.name)
    return replace(config, paths=(path,))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= _FLOAT_TOLERANCE
    return a == b


def merge_configs(configs: list[ModelConfig]) -> ModelConfig:
    """One config from several files (e.g. an HF model's ``config.json`` with its labels and its
    ``preprocessor_config.json``); a field two files state differently is a :class:`ConfigError`."""
    if len(configs) == 1:
        return configs[0]
    fields: dict[str, Any] = {}
    stated_by: dict[str, str] = {}
    extra: dict = {}
    for config in configs:
        name = config.paths[0].name if config.paths else config.description
        for key, value in config.card.to_dict().items():
            value = tuple(value) if isinstance(value, list) else value
            if key in fields and not _same(fields[key], value):
                raise ConfigError(f"{stated_by[key]} and {name} disagree on {key!r}: {fields[key]!r} vs {value!r}")
            fields.setdefault(key, value)
            stated_by.setdefault(key, name)
        extra.update(config.card.extra)
    known = {k: v for k, v in fields.items() if k not in extra}
    return ModelConfig(card=ModelCard(**known, extra=extra),
                       sources=tuple(s for c in configs for s in c.sources),
                       paths=tuple(p for c in configs for p in c.paths),
                       ignored=tuple(sorted({k for c in configs for k in c.ignored})),
                       notes=tuple(n for c in configs for n in c.notes))


def find_configs(model_path: str | os.PathLike) -> tuple[Path, ...]:
    """The config files beside a model (:data:`CONFIG_NAMES` that exist in its folder)."""
    folder = Path(model_path).parent
    return tuple(folder / name for name in CONFIG_NAMES if (folder / name).is_file())


def discover_config(model_path: str | os.PathLike) -> ModelConfig | None:
    """Read and merge the config files beside a model; ``None`` when there are none."""
    paths = find_configs(model_path)
    if not paths:
        return None
    return merge_configs([load_config(p) for p in paths])


def card_with_config(card: ModelCard, config: ModelConfig | None) -> tuple[ModelCard, dict[str, str]]:
    """The card with the fields it does not state filled from ``config``.

    Returns
    -------
    (ModelCard, dict)
        The merged card and, per stated field, where it came from: ``"card"`` or ``"config"``.
    """
    origin = card.origin()
    if config is None:
        return card, origin
    filled = {}
    for key, value in config.card.to_dict().items():
        if key in config.card.extra or getattr(card, key, None) is not None:
            continue
        filled[key] = value
        origin[key] = "config"
    extra = {**config.card.extra, **card.extra}
    return replace(card, **filled, extra=extra), origin


__all__ = ["CONFIG_NAMES", "IGNORED_KEYS", "PIL_RESAMPLE", "TIMM_INTERPOLATIONS", "ConfigError", "ModelConfig",
           "card_with_config", "config_format", "config_from_dict", "discover_config", "find_configs",
           "load_config", "merge_configs"]
