"""ONNX classifier models: the model card, the bundled files, labels, and the input description.

A *model card* is a small JSON object stored in the ONNX ``metadata_props`` under the key
``fixres_edge.card``. It says how the model was trained to see images (training size, crop_pct,
interpolation, mean/std, channel order) and which input sizes it accepts (``size_stride``). Every
field is optional: a model without a card still runs, with the caller's preprocessing or the
library defaults.

onnxruntime is imported only inside :func:`load_model`, so importing this module is cheap.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from fixres_edge.errors import one_line

#: ONNX metadata key that holds the card JSON.
CARD_KEY = "fixres_edge.card"
#: Name of the bundled model (``models/<name>.onnx`` and ``models/<name>_int8.onnx``).
BUNDLED_MODEL = "efficientnet_lite0"

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")
OUTPUT_KINDS = ("logits", "probabilities")
# ONNX element type (as onnxruntime spells it) -> Preprocessor dtype.
INPUT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(float16)": "float16"}


def _tuple_of(value: Any, kind: type, key: str, length: int | None = None) -> tuple | None:
    """Coerce a JSON list to a tuple of ``kind``; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"model card field {key!r} must be a list, got {value!r}")
    try:
        items = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"model card field {key!r} must be a list of {kind.__name__}, got {value!r}") from None
    if length is not None and len(items) != length:
        raise ValueError(f"model card field {key!r} must have {length} values, got {len(items)}")
    return items


def _choice(value: Any, key: str, choices: Sequence[str], upper: bool = True) -> str | None:
    if value is None:
        return None
    text = str(value).upper() if upper else str(value)
    if text not in choices:
        raise ValueError(f"model card field {key!r} is {value!r}; valid: {', '.join(choices)}")
    return text


def _positive_int(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model card field {key!r} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ModelCard:
    """What a model expects, read from its ONNX metadata (key ``fixres_edge.card``).

    Every field defaults to ``None`` ("not stated"): :class:`fixres_edge.runtime.Classifier`
    then uses the caller's argument or the library default. ``mean`` and ``std`` are in [0, 1]
    units and in the model's channel order (``channel_order``).

    Attributes
    ----------
    name, source, license : str or None
        Identification.
    train_size : int or None
        Input size the model was trained at.
    crop_pct : float or None
        Evaluation crop fraction: resize the short side to ``int(size / crop_pct)``, center-crop.
    interpolation : str or None
        Resize filter name (as the Preprocessor spells it, e.g. ``"bilinear"``).
    antialias : bool or None
        Whether the resize filter widens when downscaling (Pillow / torchvision behaviour).
    mean, std : tuple of 3 floats or None
        Normalization, ``(x / 255 - mean) / std``.
    layout : {"NCHW", "NHWC"} or None
        Input layout hint, used when the input shape alone does not tell.
    channel_order : {"RGB", "BGR"} or None
        Channel order the model was trained with (default RGB).
    size_stride : int or None
        Input height/width must be a multiple of this.
    scales : tuple of int or None
        Default scale set (input sizes) for FixRes policies.
    num_classes : int or None
    labels_file : str or None
        Class names file (one per line), relative to the model file.
    labels : tuple of str or None
        Class names stored in the card itself (when there is no labels file).
    output : {"logits", "probabilities"} or None
        What the first output holds; ``None`` means "detect" (a row that is non-negative and sums
        to 1 is taken as probabilities).
    extra : dict
        Card keys this version does not know, kept for :meth:`to_json`.
    """

    name: str | None = None
    source: str | None = None
    license: str | None = None
    train_size: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    antialias: bool | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    layout: str | None = None
    channel_order: str | None = None
    size_stride: int | None = None
    scales: tuple[int, ...] | None = None
    num_classes: int | None = None
    labels_file: str | None = None
    labels: tuple[str, ...] | None = None
    output: str | None = None
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        # Normalize types so a card built from JSON and one built in Python compare equal.
        def put(key, value):
            object.__setattr__(self, key, value)

        for key in ("name", "source", "license", "interpolation", "labels_file"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"model card field {key!r} must be a string, got {value!r}")
        put("train_size", _positive_int(self.train_size, "train_size"))
        put("size_stride", _positive_int(self.size_stride, "size_stride"))
        put("num_classes", _positive_int(self.num_classes, "num_classes"))
        if self.crop_pct is not None:
            crop = self.crop_pct
            if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0.0 < float(crop) <= 1.0:
                raise ValueError(f"model card field 'crop_pct' must be in (0, 1], got {crop!r}")
            put("crop_pct", float(crop))
        if self.antialias is not None and not isinstance(self.antialias, bool):
            raise ValueError(f"model card field 'antialias' must be true or false, got {self.antialias!r}")
        put("mean", _tuple_of(self.mean, float, "mean", 3))
        put("std", _tuple_of(self.std, float, "std", 3))
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and not all(math.isfinite(v) for v in values):
                raise ValueError(f"model card field {key!r} must hold finite numbers, got {list(values)}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"model card field 'std' must be positive, got {list(self.std)}")
        put("layout", _choice(self.layout, "layout", LAYOUTS))
        put("channel_order", _choice(self.channel_order, "channel_order", CHANNEL_ORDERS))
        put("output", _choice(self.output, "output", OUTPUT_KINDS, upper=False))
        if self.scales is not None and not isinstance(self.scales, (str, bytes)) and isinstance(self.scales, Sequence) \
                and not all(isinstance(v, int) and not isinstance(v, bool) for v in self.scales):
            # int() would quietly turn 224.7 into 224.
            raise ValueError(f"model card field 'scales' must be a list of integer sizes, got {list(self.scales)!r}")
        put("scales", _tuple_of(self.scales, int, "scales"))
        if self.scales is not None and any(s < 1 for s in self.scales):
            raise ValueError(f"model card field 'scales' must hold positive sizes, got {list(self.scales)}")
        put("labels", _tuple_of(self.labels, str, "labels"))
        put("extra", dict(self.extra))

    # ------------------------------------------------------------------ construction / export
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelCard":
        """Build a card from its JSON object; unknown keys go to ``extra``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a model card must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"model card is not valid JSON: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def from_onnx_metadata(cls, metadata: Mapping[str, str] | None) -> "ModelCard":
        """Read the card from ONNX ``metadata_props`` (a str -> str mapping).

        A model without the ``fixres_edge.card`` key gets an empty card (all fields ``None``).
        """
        if not metadata or CARD_KEY not in metadata:
            return cls()
        return cls.from_json(metadata[CARD_KEY])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the stated fields (``None`` fields are left out)."""
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self, **dump_kwargs) -> str:
        """The card as JSON text (keys sorted), ready for ONNX ``metadata_props``."""
        dump_kwargs.setdefault("sort_keys", True)
        return json.dumps(self.to_dict(), **dump_kwargs)

    @property
    def is_empty(self) -> bool:
        """True when the model had no card (nothing stated)."""
        return not self.to_dict()

    def origin(self) -> dict[str, str]:
        """``{field: "card"}`` for every field this card states (``Settings.origin``'s first entries)."""
        return {k: "card" for k in self.to_dict() if k not in self.extra}


# ---------------------------------------------------------------------- files
def bundled_model_path(name: str | None = BUNDLED_MODEL, int8: bool = False) -> Path:
    """Path of a bundled ONNX model (installed as the data-only package ``fixres_edge.models``).

    Works after ``pip install .`` and ``pip install -e .``.

    Raises
    ------
    FileNotFoundError
        When the file is not installed.
    """
    name = name or BUNDLED_MODEL
    filename = f"{name}_int8.onnx" if int8 else f"{name}.onnx"
    import importlib.util

    try:
        # fixres_edge.models is data only (no __init__.py): a namespace package, found without
        # importing importlib.resources (and the tempfile, random and hashlib it pulls in).
        spec = importlib.util.find_spec("fixres_edge.models")
    except ModuleNotFoundError:
        spec = None
    folders = [Path(f) for f in spec.submodule_search_locations or []] if spec is not None else []
    # A source checkout on sys.path, or an editable install (setuptools' editable finder does not
    # resolve a data-only package mapped outside fixres_edge/): the repository's models/ folder.
    folders.append(Path(__file__).resolve().parents[1] / "models")
    path = next((f / filename for f in folders if (f / filename).is_file()), folders[0] / filename)
    if not path.is_file():
        raise FileNotFoundError(f"bundled model {filename} is not installed (looked in {path.parent})")
    return path


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """Turn the ``model`` argument into a file path.

    ``None`` or ``"fp32"`` is the bundled fp32 model, ``"int8"`` the bundled int8 model, anything
    else a path to an ``.onnx`` file.
    """
    if model is None or model == "fp32":
        return bundled_model_path()
    if model == "int8":
        return bundled_model_path(int8=True)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path, 'int8', or None; got {type(model).__name__}")
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise ValueError(f"model path is a directory, not an ONNX file: {path}")
    return path


class ConfigError(ValueError):
    """A model description (config file, labels file, preprocessing option) that cannot be used.

    Raised with one line naming the file or option and the problem; the command line reports it
    as a usage error (exit code 2).
    """


#: Number of classes of ImageNet-1k: a model with this many outputs and no labels gets the bundled
#: ImageNet-1k names (in the usual sorted-WordNet-id order).
IMAGENET_CLASSES = 1000
IMAGENET_LABELS_FILE = "imagenet_labels.txt"


def generated_label(index: int) -> str:
    """The name of a class nothing names: ``"class 17"``."""
    return f"class {index}"


def read_labels_file(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from a text file, one per line in index order (trailing blank lines dropped).

    Raises
    ------
    FileNotFoundError
        When the file is missing.
    ConfigError
        When it holds no names or a blank line between names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"labels file {path} is not UTF-8 text (one class name per line)") from None
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines are not classes
    names = tuple(line.strip() for line in lines)
    if not names:
        raise ConfigError(f"labels file {path} is empty (one class name per line)")
    if "" in names:
        raise ConfigError(f"labels file {path} has a blank line at line {names.index('') + 1} "
                          f"(one class name per line)")
    return names


def imagenet_labels() -> tuple[str, ...]:
    """The bundled ImageNet-1k class names."""
    return read_labels_file(bundled_model_path().parent / IMAGENET_LABELS_FILE)


def resolve_labels(card: ModelCard, model_path: str | os.PathLike | None, num_classes: int | None = None,
                   labels=None, card_source: str = "the model card") -> tuple[tuple[str, ...], str]:
    """Class names in index order, and where they came from.

    Order of sources: ``labels`` (a labels file path, or a sequence of names), ``card.labels_file``
    (relative to the model file), ``card.labels``, the bundled ImageNet-1k names for a model with
    1000 classes, then generated names ``"class <i>"``.

    Parameters
    ----------
    card : ModelCard
    model_path : path or None
        The model file (``labels_file`` is relative to its folder).
    num_classes : int, optional
        The model's number of outputs (else ``card.num_classes``).
    labels : path or sequence of str, optional
        Explicit labels (the ``labels`` argument, ``--labels FILE``).
    card_source : str
        How messages name the card (e.g. "config.json" when the labels came from a config file).

    Returns
    -------
    (tuple of str, str)
        Names (``()`` when nothing tells the number of classes) and their source.

    Raises
    ------
    FileNotFoundError
        A labels file that is missing.
    ConfigError
        When the number of names differs from the number of classes.
    """
    count = num_classes if num_classes is not None else card.num_classes
    names: tuple[str, ...] | None = None
    if labels is not None:
        if isinstance(labels, (str, os.PathLike)):
            names, source = read_labels_file(labels), f"labels file {labels}"
        elif isinstance(labels, Sequence) and labels and all(isinstance(n, str) for n in labels):
            names, source = tuple(labels), "the labels argument"
        else:
            raise ConfigError(f"labels must be a labels file path or a non-empty list of names, got {labels!r}")
    elif card.labels_file:
        base = Path(model_path).parent if model_path is not None else Path.cwd()
        path = base / card.labels_file
        if not path.is_file():
            raise FileNotFoundError(f"labels file named by {card_source} not found: {path}")
        names, source = read_labels_file(path), f"labels file {path}"
    elif card.labels:
        names, source = card.labels, card_source
    elif count == IMAGENET_CLASSES:
        return imagenet_labels(), "ImageNet-1k (a 1000-class model without labels)"
    if names is None:
        return tuple(generated_label(i) for i in range(count or 0)), "generated"
    if count is not None and len(names) != count:
        raise ConfigError(f"{source} has {len(names)} labels but the model has {count} classes")
    return names, source


def load_labels(card: ModelCard, model_path: str | os.PathLike | None,
                num_classes: int | None = None) -> tuple[str, ...]:
    """Class names in index order (:func:`resolve_labels` without explicit labels).

    Returns
    -------
    tuple of str
        ``()`` when nothing tells the number of classes.
    """
    return resolve_labels(card, model_path, num_classes)[0]


# ---------------------------------------------------------------------- model input / output
@dataclass(frozen=True)
class ModelInput:
    """The image input of an ONNX classifier, as the session reports it.

    Attributes
    ----------
    name : str
    shape : tuple
        Raw ONNX shape: ints for static dims, str or None for dynamic ones.
    layout : {"NCHW", "NHWC"}
    dtype : {"float32", "uint8", "float16"}
        Preprocessor dtype matching the element type.
    height, width : int or None
        Static height/width, ``None`` when dynamic.
    batch : int or None
        Static batch size, ``None`` when dynamic.
    """

    name: str
    shape: tuple
    layout: str
    dtype: str
    height: int | None
    width: int | None
    batch: int | None

    @property
    def static_size(self) -> int | None:
        """The fixed input size of a static model, ``None`` when height and width are dynamic."""
        return self.height if self.height is not None else self.width

    @property
    def dynamic_size(self) -> bool:
        return self.height is None and self.width is None

    @classmethod
    def from_session(cls, session, card: ModelCard | None = None, model_name: str = "model") -> "ModelInput":
        """The image input of an ``onnxruntime.InferenceSession`` (exactly one required input)."""
        inputs = session.get_inputs()
        if len(inputs) != 1:
            listed = ", ".join(f"{i.name} {list(i.shape)}" for i in inputs) or "none"
            raise ValueError(f"{model_name} has {len(inputs)} required inputs ({listed}); a classifier must have "
                             f"exactly one image input")
        only = inputs[0]
        return cls.from_onnx(only.name, only.shape, only.type, card, model_name)

    @classmethod
    def from_onnx(cls, name: str, shape: Sequence, element_type: str, card: ModelCard | None = None,
                  model_name: str = "model") -> "ModelInput":
        """Describe one ONNX input; raise ``ValueError`` when it is not a usable image input."""
        card = card or ModelCard()
        shape = tuple(shape) if shape is not None else ()
        pretty = "[" + ", ".join(str(d) for d in shape) + "]"
        if len(shape) != 4:
            raise ValueError(f"{model_name}: input {name!r} has shape {pretty} ({len(shape)}-D); expected a 4-D "
                             f"image input (N, 3, H, W) or (N, H, W, 3)")
        dtype = INPUT_TYPES.get(element_type)
        if dtype is None:
            raise ValueError(f"{model_name}: input {name!r} has element type {element_type}; supported: "
                             + ", ".join(INPUT_TYPES))
        static = [d if isinstance(d, int) and d > 0 else None for d in shape]
        first_is_c, last_is_c = static[1] == 3, static[3] == 3
        if first_is_c != last_is_c:
            layout = "NCHW" if first_is_c else "NHWC"
            if card.layout is not None and card.layout != layout:
                raise ValueError(f"{model_name}: input {name!r} shape {pretty} is {layout} but the model card "
                                 f"says layout {card.layout}")
        elif card.layout is not None:
            layout = card.layout
        else:
            raise ValueError(f"unknown model input layout for {model_name} input {name!r} shape {pretty}: "
                             f"neither or both of dims 1 and 3 equal 3; set \"layout\" (NCHW or NHWC) in the "
                             f"model card")
        channel = static[1] if layout == "NCHW" else static[3]
        if channel is not None and channel != 3:
            raise ValueError(f"{model_name}: input {name!r} shape {pretty} has {channel} channels in layout "
                             f"{layout}; only 3-channel images are supported")
        height, width = (static[2], static[3]) if layout == "NCHW" else (static[1], static[2])
        if (height is None) != (width is None) or (height is not None and height != width):
            raise ValueError(f"{model_name}: input {name!r} shape {pretty} has a non-square or half-static size; "
                             f"supported: square static sizes or fully dynamic height and width")
        batch = static[0]
        if batch is not None and batch != 1:
            raise ValueError(f"{model_name}: input {name!r} has a fixed batch of {batch}; images are fed one at a "
                             f"time: export with batch 1 or a dynamic batch")
        return cls(name=name, shape=shape, layout=layout, dtype=dtype, height=height, width=width, batch=batch)


def valid_sizes(card: ModelCard, model_input: ModelInput | None = None) -> tuple[int, ...]:
    """Input sizes worth listing for a model: its static size, or stride multiples around train_size.

    The list is a suggestion for messages and ``inspect`` (0.7x to 1.45x the training size); any
    multiple of ``size_stride`` is accepted. Without a stated stride the sizes step by 32 from the
    training size itself (240: 176, 208, 240, ...), as :func:`fixres_edge.policy.fixres_sizes` does.
    """
    if model_input is not None and model_input.static_size is not None:
        return (model_input.static_size,)
    stride = card.size_stride or 32
    train = card.train_size or 224
    offset = 0 if card.size_stride else train % stride
    low = max(stride, -(-(int(0.7 * train) - offset) // stride) * stride + offset)
    high = (int(1.45 * train) - offset) // stride * stride + offset
    return tuple(range(low, high + 1, stride))


def check_size(size: int, card: ModelCard, model_input: ModelInput | None = None,
               model_name: str | None = None) -> int:
    """Validate an input size for a model; return it.

    Raises
    ------
    ValueError
        For a static model asked for another size, or a size that is not a multiple of the card's
        ``size_stride``; the message lists valid sizes.
    """
    name = model_name or card.name or "the model"
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if model_input is not None and model_input.static_size is not None:
        if size != model_input.static_size:
            raise ValueError(f"size {size} is not possible for {name}: its input {model_input.name!r} has the "
                             f"static size {model_input.static_size}; valid: {model_input.static_size}")
        return size
    if card.size_stride and size % card.size_stride:
        listed = ", ".join(str(s) for s in valid_sizes(card, model_input))
        raise ValueError(f"size {size} is not a multiple of {card.size_stride} for {name}; valid: {listed} ...")
    return size


@dataclass(frozen=True)
class ModelOutput:
    """The classifier output used (the first one): name, raw shape, number of classes if static."""

    name: str
    shape: tuple
    num_classes: int | None


def _describe_output(name: str, shape: Sequence, card: ModelCard) -> ModelOutput:
    shape = tuple(shape) if shape is not None else ()
    dims = shape[1:]
    if dims and all(isinstance(d, int) and d > 0 for d in dims):
        count = 1
        for d in dims:
            count *= d
    else:
        count = card.num_classes
    return ModelOutput(name=name, shape=shape, num_classes=count)


@dataclass(frozen=True)
class LoadedModel:
    """An opened ONNX classifier: session plus what was read from it."""

    path: Path
    session: Any
    card: ModelCard
    input: ModelInput
    output: ModelOutput
    labels: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.card.name or self.path.stem


def session_options(threads: int | None = None):
    """Explicit ORT session options: ``threads`` intra-op threads (0 = ORT default), one inter-op
    thread, full graph optimization, sequential execution (classifiers are chains; parallel
    execution only adds thread contention on small CPUs)."""
    import onnxruntime as ort

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise ValueError(f"threads must be a non-negative integer or None, got {threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def check_providers(providers, available: Sequence[str]) -> list:
    """Validate an ONNX Runtime ``providers`` list (names, or ``(name, options)`` pairs).

    ORT itself only warns about an unknown provider and silently falls back to the CPU, and a bare
    string would be read as a list of one-letter names: both are errors here.
    """
    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, (str, bytes)) or not isinstance(providers, Sequence) or not providers:
        raise TypeError(f"providers must be a non-empty list of ONNX Runtime provider names, got {providers!r} "
                        f"(e.g. ['CPUExecutionProvider']); available: {', '.join(available)}")
    for entry in providers:
        name = entry[0] if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict) else entry
        if not isinstance(name, str):
            raise TypeError(f"providers entries must be names or (name, options dict) pairs, got {entry!r}")
        if name not in available:
            raise ValueError(f"unknown or unavailable ONNX Runtime provider {name!r}; available: "
                             f"{', '.join(available)}")
    return list(providers)


def open_session(path: Path, threads: int | None = None, providers: Sequence[str] | None = None):
    """Create an ``onnxruntime.InferenceSession``; ORT's load errors become one-line ``ValueError``."""
    import onnxruntime as ort

    options = session_options(threads)
    providers = check_providers(providers, ort.get_available_providers())
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # ORT's pybind exceptions do not derive from RuntimeError
        kind = type(error).__name__
        if kind == "InvalidProtobuf":
            raise ValueError(f"{path} is not an ONNX model (protobuf parsing failed)") from None
        if kind == "NoSuchFile":
            raise FileNotFoundError(f"model file not found: {path}") from None
        if isinstance(error, (ValueError, TypeError)):
            raise ValueError(f"cannot load {path}: {one_line(error)}") from None
        raise ValueError(f"cannot load ONNX model {path}: {one_line(error)}") from None


def describe_session(session, path: Path, card: ModelCard | None = None) -> tuple[ModelCard, ModelInput, ModelOutput]:
    """Read card, image input and output from a session; ``ValueError`` for unusable models.

    ``card`` replaces the card stored in the model (to check a card before writing it).
    """
    if card is None:
        card = ModelCard.from_onnx_metadata(session.get_modelmeta().custom_metadata_map)
    model_name = card.name or Path(path).name
    model_input = ModelInput.from_session(session, card, model_name)
    outputs = session.get_outputs()
    if not outputs:
        raise ValueError(f"{model_name} has no outputs")
    first = outputs[0]
    if first.type not in ("tensor(float)", "tensor(float16)", "tensor(double)"):
        raise ValueError(f"{model_name}: output {first.name!r} has element type {first.type}; expected float scores")
    return card, model_input, _describe_output(first.name, first.shape, card)


def load_model(model: str | os.PathLike | None = None, threads: int | None = None,
               providers: Sequence[str] | None = None) -> LoadedModel:
    """Open an ONNX classifier and read its card, input, output, and labels.

    Raises
    ------
    FileNotFoundError
        Missing model or labels file.
    ValueError
        Not an ONNX model, more than one required input, an input that is not a 4-D 3-channel image,
        an unsupported element type, or a bad card.
    """
    path = resolve_model_path(model)
    session = open_session(path, threads, providers)
    card, model_input, output = describe_session(session, path)
    labels = load_labels(card, path, output.num_classes)
    return LoadedModel(path=path, session=session, card=card, input=model_input, output=output, labels=labels)
