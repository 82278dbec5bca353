"""How a Classifier's preprocessing and scale policy are decided: one resolver, one precedence.

:func:`resolve_settings` follows timm's precedence: explicit argument, then the policy (scales
only), then the model card, then a config file (timm ``config.json`` or Hugging Face
``preprocessor_config.json``, see :mod:`fixres_edge.configs`), then the library defaults below; it
records in ``Settings.origin`` where each value came from. :func:`describe_model` merges card,
config, arguments and labels; a float model that runs on assumed defaults says so once
(:class:`PreprocessingWarning`, raised by the Classifier).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixres_edge.constants import IMAGENET_MEAN, IMAGENET_STD
from fixres_edge.model import ConfigError, ModelCard, ModelInput, check_size, resolve_labels
from fixres_edge.policy import DEFAULT_CROP_PCT, DEFAULT_TRAIN_SIZE, Scale, ScalePolicy

# Library defaults (the last step of the precedence): torchvision/timm evaluation settings.
DEFAULT_INTERPOLATION = "bilinear"
DEFAULT_ANTIALIAS = True
DEFAULT_CROP = "center"


class PreprocessingWarning(UserWarning):
    """A model runs with preprocessing that nothing stated (assumed defaults), or that a config file
    describes only approximately."""


@dataclass(frozen=True)
class Settings:
    """Resolved preprocessing and policy for a model (output of :func:`resolve_settings`).

    ``origin`` maps each setting to where its value came from: "argument", "policy", "card",
    "config", "model input" or "default".
    """

    policy: ScalePolicy
    interpolation: str
    antialias: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: str
    layout: str
    dtype: str
    channel_order: str
    origin: dict = field(default_factory=dict, hash=False, compare=False)


def _pick(name: str, explicit: Any, card_value: Any, default: Any, origin: dict, card_source: str = "card") -> Any:
    for value, source in ((explicit, "argument"), (card_value, card_source)):
        if value is not None:
            origin[name] = source
            return value
    origin[name] = "default"
    return default


def default_scale(card: ModelCard, model_input: ModelInput | None, size: int | None = None,
                  crop_pct: float | None = None) -> Scale:
    """One scale: ``size`` or the static input size or the card's train_size or 224, at
    ``crop_pct`` or the card's crop_pct or 0.875."""
    static = model_input.static_size if model_input is not None else None
    return Scale(size if size is not None else (static or card.train_size or DEFAULT_TRAIN_SIZE),
                 crop_pct if crop_pct is not None else (card.crop_pct or DEFAULT_CROP_PCT))


def resolve_settings(card: ModelCard, model_input: ModelInput, *, policy: ScalePolicy | None = None,
                     size: int | None = None, crop_pct: float | None = None, interpolation: str | None = None,
                     antialias: bool | None = None, mean=None, std=None, crop: str | None = None,
                     model_name: str | None = None, card_origin: dict | None = None) -> Settings:
    """The one place that decides a Classifier's settings.

    Precedence, per setting: explicit argument, then ``policy`` (scales only), then the model card,
    then a config file, then library defaults (224, crop_pct 0.875, bilinear, antialias, ImageNet
    mean/std, center crop). ``card`` is the card with the config's fields filled in
    (:func:`fixres_edge.configs.card_with_config`) and ``card_origin`` says per field whether it
    came from the "card" or the "config" (or an "argument" folded into the card). An explicit
    ``size`` or ``crop_pct`` replaces the policy by a single scale. Layout and dtype always come from
    the model input. Every scale is checked against the model (static size, ``size_stride``).
    """
    origin: dict[str, str] = {}
    card_origin = card_origin or {}
    source = lambda key: card_origin.get(key, "card")  # noqa: E731
    name = model_name or card.name
    if size is not None or crop_pct is not None:
        chosen = ScalePolicy.single(*_scale_fields(default_scale(card, model_input, size, crop_pct)), model=name)
        origin["scales"] = "argument"
    elif policy is not None:
        if not isinstance(policy, ScalePolicy):
            raise TypeError(f"policy must be a ScalePolicy or a path to a policy JSON file, "
                            f"got {type(policy).__name__}")
        chosen = policy
        origin["scales"] = "policy"
    else:
        chosen = ScalePolicy.single(*_scale_fields(default_scale(card, model_input)), model=name)
        stated = "train_size" if card.train_size else ("crop_pct" if card.crop_pct else None)
        if model_input.static_size:
            origin["scales"] = "model input"
        else:
            origin["scales"] = source(stated) if stated else "default"
    for scale in chosen.scales:
        check_size(scale.size, card, model_input, name)
    return Settings(
        policy=chosen,
        interpolation=_pick("interpolation", interpolation, card.interpolation, DEFAULT_INTERPOLATION, origin,
                            source("interpolation")),
        antialias=_pick("antialias", antialias, card.antialias, DEFAULT_ANTIALIAS, origin, source("antialias")),
        mean=tuple(_pick("mean", mean, card.mean, IMAGENET_MEAN, origin, source("mean"))),
        std=tuple(_pick("std", std, card.std, IMAGENET_STD, origin, source("std"))),
        crop=_pick("crop", crop, None, DEFAULT_CROP, origin),
        layout=model_input.layout,
        dtype=model_input.dtype,
        channel_order=card.channel_order or "RGB",
        origin=origin,
    )


def _scale_fields(scale: Scale) -> tuple[int, float]:
    return scale.size, scale.crop_pct


#: Card fields that describe preprocessing: a card or config stating any of them is taken as the
#: author's description (unstated fields then take the documented defaults without a warning).
PREPROCESSING_FIELDS = ("train_size", "crop_pct", "interpolation", "antialias", "mean", "std", "scales",
                        "size_stride")


def assumed_preprocessing(settings: Settings, model_input: ModelInput,
                          card_origin: dict | None = None) -> tuple[str, ...]:
    """What a model runs with that nothing stated and that can silently be wrong.

    Only for a model whose card and config state no preprocessing at all (``card_origin``: field
    -> "card" / "config" / "argument"): the input size and crop of a dynamic-size model, and
    mean/std of a float model (a uint8 model takes pixels and normalizes inside its graph), unless
    arguments gave them. Once something is assumed, an assumed crop is named too.

    Returns
    -------
    tuple of str
        Empty when nothing that matters was assumed.
    """
    if any((card_origin or {}).get(key) in ("card", "config") for key in PREPROCESSING_FIELDS):
        return ()
    scale = settings.policy.scales[0]
    origin = settings.origin
    assumed = []
    if origin.get("scales") == "default":
        assumed.append(f"size {scale.size}, crop_pct {scale.crop_pct:g}")
    if model_input.dtype != "uint8" and "default" in (origin.get("mean"), origin.get("std")):
        if origin.get("scales") == "model input":
            assumed.append(f"crop_pct {scale.crop_pct:g}")
        assumed.append("ImageNet mean/std")
    return tuple(assumed)


def assumed_message(model_name: str, assumed: tuple[str, ...]) -> str:
    """The one-line warning for :func:`assumed_preprocessing`."""
    return (f"{model_name}: no model card, config file or argument states its preprocessing; assumed "
            f"{'; '.join(assumed)}. State it with size/crop_pct/mean/std arguments (command line: --size, "
            f"--crop-pct, --mean, --std), a config.json beside the model, or a card (fixres-edge card)")


# Classifier arguments that describe the model: folded into its card, above the card's own fields.
_STATED_FIELDS = ("train_size", "crop_pct", "interpolation", "antialias", "mean", "std")


def describe_model(card: ModelCard, model_path: Path | None, num_classes: int | None, *, config=None,
                   labels=None, **stated) -> tuple[ModelCard, dict, Any, tuple[str, ...], str]:
    """The model's effective card: explicit arguments, then its ONNX card, then a config file.

    Parameters
    ----------
    card : ModelCard
        Read from the ONNX metadata.
    model_path : Path or None
        The model file (config files are looked for in its folder).
    num_classes : int or None
        Number of outputs.
    config : None, False, path, or ModelConfig
        ``None``: for a model without a card, the config files beside it (``config.json``,
        ``preprocessor_config.json``); ``False``: none; a path: that file.
    labels : path or sequence of str, optional
        Class names (a file with one per line, or the names).
    **stated
        ``train_size``, ``crop_pct``, ``interpolation``, ``antialias``, ``mean``, ``std``
        (``None``: not stated).

    Returns
    -------
    (ModelCard, dict, ModelConfig or None, tuple of str, str)
        Effective card, origin per stated field ("argument", "card", "config"), the config read,
        the labels and where they came from.

    Raises
    ------
    ConfigError
        A bad config file, labels file or argument (one line).
    """
    # fixres_edge.configs is imported only when a config is given or looked for (a card-less model):
    # a deployed process with a carded model does without it.
    if config is None and card.is_empty and model_path is not None:
        from fixres_edge.configs import discover_config

        config = discover_config(model_path)
    elif config is False:
        config = None
    elif isinstance(config, (str, os.PathLike)):
        from fixres_edge.configs import load_config

        config = load_config(config)
    elif config is not None:
        from fixres_edge.configs import ModelConfig

        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a path to a config file, False, or None; got {type(config).__name__}")
    if config is None:
        merged, origin = card, card.origin()
    else:
        from fixres_edge.configs import card_with_config

        merged, origin = card_with_config(card, config)
    given = {k: v for k, v in stated.items() if v is not None}
    unknown = set(given) - set(_STATED_FIELDS)
    if unknown:
        raise TypeError(f"unknown model description argument(s) {', '.join(sorted(unknown))}; valid: "
                        f"{', '.join(_STATED_FIELDS)}")
    for key, value in given.items():
        try:
            merged = dataclasses.replace(merged, **{key: value})
        except ValueError as error:
            raise ConfigError(str(error).replace("model card field", "argument")) from None
        origin[key] = "argument"
    card_source = "the model card"
    if config is not None and origin.get("labels") == "config":
        card_source = config.description
    names, labels_source = resolve_labels(merged, model_path, num_classes, labels, card_source=card_source)
    return merged, origin, config, names, labels_source
