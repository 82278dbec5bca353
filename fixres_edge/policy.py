"""FixRes scale policies: which input sizes a classifier runs at, and how their answers combine.

A *scale* is a pair (input size R, crop_pct): resize the short side to ``int(R / crop_pct)``,
center-crop R x R; it may also name the *variant* of the network that runs it (``"fp32"`` or
``"int8"`` for the bundled model, or an ONNX file, relative to the policy file, for others), so
that precision is part of the scale set: e.g. int8 @ 224 first, fp32 @ 256 only for uncertain
images. A scale without a variant runs the classifier's own model. A :class:`ScalePolicy` holds
a reduced scale set and a mode:

* ``"single"``: one scale.
* ``"cascade"``: run the scales low to high; stop at the first one whose top probability reaches
  ``threshold`` (the model is sure enough); answer with that scale's probabilities
  (``combine="last"``) or with the mean over the scales run (``combine="mean"``).
* ``"ensemble"``: average the probabilities of every scale (multi-scale test-time averaging).

:func:`run_policy` executes a policy given ``infer(scale) -> probs``; it is pure logic, so it is
tested without a model. Policies are saved as JSON (:meth:`ScalePolicy.save`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

MODES = ("single", "cascade", "ensemble")
COMBINES = ("last", "mean")
# Cascade confidence: the top probability, or the margin between the top two (a small margin
# means two classes compete, the case a higher resolution resolves best).
CONFIDENCES = ("max", "margin")
POLICY_FORMAT = "fixres_edge.scale_policy"
POLICY_VERSION = 2  # 2: scales may name a model variant (written only when one does)
#: FixRes rule: test sizes relative to the training size (about 0.86x, 1x, 1.14x, 1.29x).
FIXRES_FACTORS = (6 / 7, 1.0, 8 / 7, 9 / 7)
#: crop_pct values a static-size model can vary instead of its size (zoom levels).
STATIC_CROP_PCTS = (1.0, 0.875, 0.75)
DEFAULT_TRAIN_SIZE = 224
DEFAULT_CROP_PCT = 0.875
DEFAULT_STRIDE = 32


#: Variant names of the bundled model; any other variant is an ONNX file (a name ending in .onnx).
BUNDLED_VARIANTS = ("fp32", "int8")


def check_variant(variant: Any) -> str | None:
    """``variant`` if it is None, a bundled variant name or an ``.onnx`` file name; else a one-line
    ``ValueError`` listing the valid choices."""
    if variant is None:
        return None
    if isinstance(variant, os.PathLike):
        variant = os.fspath(variant)
    if isinstance(variant, str) and (variant in BUNDLED_VARIANTS or variant.lower().endswith(".onnx")):
        return variant
    raise ValueError(f"scale variant {variant!r} is not valid; valid: {', '.join(BUNDLED_VARIANTS)}, "
                     f"or an ONNX file name ending in .onnx (relative to the policy file)")


def variant_text(variant: str | None) -> str:
    """A variant as tables show it: the bundled names as they are, a file by its stem; "" for none."""
    if variant is None:
        return ""
    return variant if variant in BUNDLED_VARIANTS else Path(variant).stem


@dataclass(frozen=True)
class Scale:
    """One evaluation scale: input size ``size`` (pixels), ``crop_pct`` in (0, 1], and the model
    ``variant`` that runs it (None: the classifier's own model; see the module docstring).

    Scales sort by size, then crop_pct, then variant (no variant first).
    """

    size: int
    crop_pct: float = DEFAULT_CROP_PCT
    variant: str | None = None

    def _key(self):
        return (self.size, self.crop_pct, self.variant is not None, self.variant or "")

    def __lt__(self, other):
        return self._key() < other._key() if isinstance(other, Scale) else NotImplemented

    def __le__(self, other):
        return self._key() <= other._key() if isinstance(other, Scale) else NotImplemented

    def __gt__(self, other):
        return self._key() > other._key() if isinstance(other, Scale) else NotImplemented

    def __ge__(self, other):
        return self._key() >= other._key() if isinstance(other, Scale) else NotImplemented

    def __post_init__(self):
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ValueError(f"scale size must be a positive integer, got {self.size!r}")
        crop = self.crop_pct
        if isinstance(crop, bool) or not isinstance(crop, (int, float, np.floating)) or not 0.0 < float(crop) <= 1.0:
            raise ValueError(f"scale crop_pct must be in (0, 1], got {crop!r}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "crop_pct", float(crop))
        object.__setattr__(self, "variant", check_variant(self.variant))

    @property
    def resize(self) -> int:
        """Short side after the resize: ``int(size / crop_pct)``."""
        return int(self.size / self.crop_pct)

    @property
    def geometry(self) -> "Scale":
        """This scale without its variant: what preprocessing depends on."""
        return self if self.variant is None else Scale(self.size, self.crop_pct)

    def with_variant(self, variant: str | None) -> "Scale":
        return Scale(self.size, self.crop_pct, variant)

    def to_dict(self) -> dict[str, Any]:
        data = {"size": self.size, "crop_pct": self.crop_pct}
        if self.variant is not None:  # older readers keep working on one-model policies
            data["variant"] = self.variant
        return data

    @classmethod
    def coerce(cls, value: Any) -> "Scale":
        """A Scale from a Scale, a ``(size, crop_pct)`` or ``(size, crop_pct, variant)`` tuple, or a
        ``{"size", "crop_pct", "variant"}`` dict."""
        if isinstance(value, Scale):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"size", "crop_pct", "variant"}
            if unknown or "size" not in value:
                raise ValueError(f"a scale must be {{\"size\": int, \"crop_pct\": float, \"variant\": str}}, "
                                 f"got {dict(value)!r}")
            return cls(value["size"], value.get("crop_pct", DEFAULT_CROP_PCT), value.get("variant"))
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) in (2, 3):
            return cls(*value)
        raise ValueError(f"a scale must be a Scale, (size, crop_pct) or (size, crop_pct, variant), or a dict; "
                         f"got {value!r}")

    def __str__(self) -> str:
        text = f"{self.size}@{self.crop_pct:g}"
        return text if self.variant is None else f"{self.variant}:{text}"


def _json_dict(value: Any, key: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"policy field {key!r} must be a JSON object with string keys, got {value!r}")
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError):
        raise ValueError(f"policy field {key!r} must hold JSON values only, got {value!r}") from None
    return dict(value)


@dataclass(frozen=True)
class ScalePolicy:
    """A reduced scale set and how to run it (see the module docstring).

    Attributes
    ----------
    model : str or None
        Name of the model the policy was chosen for (informative; not enforced).
    scales : tuple of Scale
        In run order (low to high for a cascade).
    mode : {"single", "cascade", "ensemble"}
    threshold : float or None
        Cascade: escalate to the next scale while the top probability is below this, in (0, 1].
    combine : {"last", "mean"}
        Cascade answer: the last scale's probabilities or the mean over the scales run.
    confidence : {"max", "margin"}
        Cascade: what is compared with ``threshold``, the top probability or the top-1 minus
        top-2 margin.
    accuracy, latency_ms : dict or None
        What the policy measured when it was chosen (e.g. ``{"top1": 0.889, "n": 500}``).
    device : str or None
        Where the latency was measured.
    notes : str
    base_dir : str or None
        The folder variant files are relative to: the policy file's, set by :meth:`load` (not
        saved; None: the current directory).
    """

    model: str | None = None
    scales: tuple[Scale, ...] = ()
    mode: str = "single"
    threshold: float | None = None
    combine: str = "last"
    confidence: str = "max"
    accuracy: dict | None = field(default=None, hash=False)
    latency_ms: dict | None = field(default=None, hash=False)
    device: str | None = None
    notes: str = ""
    base_dir: str | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if isinstance(self.scales, (str, bytes, Mapping)) or not isinstance(self.scales, Sequence):
            raise ValueError(f"policy scales must be a list of scales, got {self.scales!r}")
        scales = tuple(Scale.coerce(s) for s in self.scales)
        put("scales", scales)
        if self.mode not in MODES:
            raise ValueError(f"policy mode {self.mode!r} is not valid; valid: {', '.join(MODES)}")
        if self.combine not in COMBINES:
            raise ValueError(f"policy combine {self.combine!r} is not valid; valid: {', '.join(COMBINES)}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"policy confidence {self.confidence!r} is not valid; valid: {', '.join(CONFIDENCES)}")
        if not scales:
            raise ValueError("a policy needs at least one scale")
        if len(set(scales)) != len(scales):
            raise ValueError(f"policy scales repeat: {', '.join(map(str, scales))}")
        if self.mode == "single" and len(scales) != 1:
            raise ValueError(f"mode 'single' takes exactly one scale, got {len(scales)}; use 'cascade' or 'ensemble'")
        if self.mode in ("cascade", "ensemble") and len(scales) < 2:
            raise ValueError(f"mode {self.mode!r} needs at least two scales, got {len(scales)}")
        if self.threshold is not None:
            t = self.threshold
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < float(t) <= 1.0:
                raise ValueError(f"policy threshold must be in (0, 1], got {t!r}")
            put("threshold", float(t))
        if self.mode == "cascade" and self.threshold is None:
            raise ValueError("mode 'cascade' needs a threshold in (0, 1]")
        if self.model is not None and not isinstance(self.model, str):
            raise ValueError(f"policy model must be a string, got {self.model!r}")
        if self.device is not None and not isinstance(self.device, str):
            raise ValueError(f"policy device must be a string, got {self.device!r}")
        if not isinstance(self.notes, str):
            raise ValueError(f"policy notes must be a string, got {self.notes!r}")
        if self.base_dir is not None and not isinstance(self.base_dir, str):
            raise ValueError(f"policy base_dir must be a string, got {self.base_dir!r}")
        put("accuracy", _json_dict(self.accuracy, "accuracy"))
        put("latency_ms", _json_dict(self.latency_ms, "latency_ms"))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def single(cls, size: int, crop_pct: float = DEFAULT_CROP_PCT, model: str | None = None,
               variant: str | None = None, **fields) -> "ScalePolicy":
        """A one-scale policy (run by ``variant``, default the classifier's own model)."""
        return cls(model=model, scales=(Scale(size, crop_pct, variant),), mode="single", **fields)

    @property
    def max_size(self) -> int:
        return max(s.size for s in self.scales)

    @property
    def variants(self) -> tuple[str | None, ...]:
        """The model variants the scales run, in order of first use (None: the classifier's model)."""
        return tuple(dict.fromkeys(s.variant for s in self.scales))

    def with_scales(self, scales: Sequence[Scale]) -> "ScalePolicy":
        return replace(self, scales=tuple(scales))

    def relocated(self, folder: str | os.PathLike) -> "ScalePolicy":
        """The policy as saved into ``folder``: variant files (relative to :attr:`base_dir`, or the
        current directory) rewritten relative to ``folder``, so the policy file finds them."""
        source = Path(self.base_dir) if self.base_dir is not None else Path.cwd()
        folder = Path(folder).resolve()

        def move(scale: Scale) -> Scale:
            if scale.variant is None or scale.variant in BUNDLED_VARIANTS:
                return scale
            target = (source / scale.variant).resolve()
            return scale.with_variant(Path(os.path.relpath(target, folder)).as_posix())

        return replace(self, scales=tuple(move(s) for s in self.scales), base_dir=str(folder))

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with ``format`` and ``version`` keys."""
        data = {
            "format": POLICY_FORMAT,
            "version": POLICY_VERSION if any(s.variant is not None for s in self.scales) else 1,
            "model": self.model,
            "mode": self.mode,
            "scales": [s.to_dict() for s in self.scales],
            "threshold": self.threshold,
            "combine": self.combine,
            "accuracy": self.accuracy,
            "latency_ms": self.latency_ms,
            "device": self.device,
            "notes": self.notes,
        }
        if self.confidence != "max":  # older readers keep working on max-confidence policies
            data["confidence"] = self.confidence
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScalePolicy":
        """Inverse of :meth:`to_dict`; validates keys, version, and values."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a scale policy must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", POLICY_FORMAT)
        if fmt != POLICY_FORMAT:
            raise ValueError(f"not a scale policy: format is {fmt!r}, expected {POLICY_FORMAT!r}")
        version = data.pop("version", None)
        if version is None:
            raise ValueError(f"scale policy has no 'version'; this fixres_edge reads version {POLICY_VERSION}")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= POLICY_VERSION:
            raise ValueError(f"scale policy version {version!r} is not supported; supported: 1..{POLICY_VERSION}")
        valid = ("model", "scales", "mode", "threshold", "combine", "confidence", "accuracy", "latency_ms",
                 "device", "notes")
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown scale policy key(s) {', '.join(unknown)}; valid: format, version, "
                             + ", ".join(valid))
        if "scales" not in data:
            raise ValueError("scale policy has no 'scales'")
        if data.get("notes") is None:
            data.pop("notes", None)
        if data.get("combine") is None:
            data.pop("combine", None)
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the policy as JSON (variant files rewritten relative to the file's folder, see
        :meth:`relocated`); returns the path."""
        path = Path(path)
        policy = self.relocated(path.resolve().parent) if any(
            s.variant not in (None, *BUNDLED_VARIANTS) for s in self.scales) else self
        path.write_text(policy.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ScalePolicy":
        """Read a policy JSON file (``FileNotFoundError`` / one-line ``ValueError``)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"policy file {path} is not valid JSON: {error}") from None
        try:
            return replace(cls.from_dict(data), base_dir=str(path.resolve().parent))
        except ValueError as error:
            raise ValueError(f"policy file {path}: {error}") from None


# ---------------------------------------------------------------------- default scale sets
def round_to_stride(value: float, stride: int) -> int:
    """Nearest positive multiple of ``stride`` (halves round up)."""
    return max(stride, int(math.floor(value / stride + 0.5)) * stride)


def fixres_sizes(train_size: int, stride: int = DEFAULT_STRIDE) -> tuple[int, ...]:
    """The FixRes scale set derived from a training size: about 0.86x, 1x, 1.14x, 1.29x of it.

    Each size is the training size plus a whole number of strides (the nearest to the factor), so
    the training size itself is always in the set and every size shares its remainder modulo the
    stride: a model trained at 240 with stride 32 gets 208, 240, 272, 304, and one trained at a
    multiple of the stride gets multiples of it (224 / 32: 192, 224, 256, 288). Networks with
    TensorFlow "SAME" padding fixed at export time are exact only at sizes that halve like the
    training size, which this keeps.

    Parameters
    ----------
    train_size : int
        Input size the model was trained at (>= 1).
    stride : int, default 32
        Spacing of the sizes (the model's ``size_stride``).

    Returns
    -------
    tuple of int
        Sorted, distinct, positive sizes; the training size is always included.

    Examples
    --------
    >>> fixres_sizes(224, 32)
    (192, 224, 256, 288)
    >>> fixres_sizes(260, 32)
    (228, 260, 292, 324)
    """
    for name, value in (("train_size", train_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    train_size, stride = int(train_size), int(stride)
    sizes = set()
    for factor in FIXRES_FACTORS:
        steps = int(math.floor((factor - 1.0) * train_size / stride + 0.5))
        size = train_size + steps * stride
        if size >= 1:
            sizes.add(size)
    return tuple(sorted(sizes))


def default_scales(card=None, dynamic_size: bool = True, static_size: int | None = None) -> tuple[Scale, ...]:
    """The default FixRes scale set for a model.

    Parameters
    ----------
    card : ModelCard or None
        Supplies ``train_size``, ``crop_pct``, ``size_stride`` and ``scales`` when stated.
    dynamic_size : bool
        True when the model accepts any input size (a multiple of its stride).
    static_size : int or None
        The fixed input size of a static model (``dynamic_size=False``); defaults to the card's
        ``train_size``.

    Returns
    -------
    tuple of Scale
        Dynamic models: the card's ``scales`` if given, else :func:`fixres_sizes` of the training
        size (224 when not stated) and the stride (32 when not stated): 192, 224, 256, 288 for
        224 / 32, 208, 240, 272, 304 for 240; all at the card's crop_pct, sorted by size. Static models: the fixed size at crop_pct 1.0, 0.875, 0.75
        (plus the card's crop_pct if different): zooming is the only FixRes lever they have.
    """
    crop = getattr(card, "crop_pct", None) or DEFAULT_CROP_PCT
    train = getattr(card, "train_size", None)
    if dynamic_size:
        sizes = getattr(card, "scales", None)
        if not sizes:
            stated = getattr(card, "size_stride", None)
            base = train or DEFAULT_TRAIN_SIZE
            if stated and base % stated:
                # Sizes must be multiples of a stated stride even when the training size is not.
                sizes = [round_to_stride(base * f, stated) for f in FIXRES_FACTORS]
            else:
                sizes = fixres_sizes(base, stated or DEFAULT_STRIDE)
        return tuple(Scale(s, crop) for s in sorted(set(sizes)))
    size = static_size or train or DEFAULT_TRAIN_SIZE
    crops = sorted(set(STATIC_CROP_PCTS) | {crop}, reverse=True)
    return tuple(Scale(size, c) for c in crops)


# ---------------------------------------------------------------------- execution
@dataclass(frozen=True)
class PolicyResult:
    """Outcome of :func:`run_policy`.

    Attributes
    ----------
    probs : np.ndarray
        float32 (num_classes,): the answer.
    scales_run : tuple of Scale
        The scales that were run, in order.
    per_scale_probs : tuple of np.ndarray
        Each scale's probabilities, aligned with ``scales_run``.
    """

    probs: np.ndarray
    scales_run: tuple[Scale, ...]
    per_scale_probs: tuple[np.ndarray, ...]

    @property
    def answered_by(self) -> Scale:
        """The last scale run (the one a cascade stopped at)."""
        return self.scales_run[-1]


def mean_probs(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of same-shape probability arrays, summed in float64, returned as float32 (the arithmetic
    of "mean" policies; calibration scores them with this same function)."""
    return np.mean(np.stack([np.asarray(a, dtype=np.float64) for a in arrays]), axis=0).astype(np.float32)


def cascade_confidence(probs: np.ndarray, confidence: str = "max"):
    """The value a cascade compares with its threshold, over the last axis, in the probabilities' dtype.

    "max": the top probability; "margin": top-1 minus top-2 probability. Calibration scores
    thresholds with this same function, so a calibrated threshold means the same at run time.
    """
    probs = np.asarray(probs)
    classes = probs.shape[-1]
    if confidence == "margin" and classes >= 2:
        top_two = np.partition(probs, classes - 2, axis=-1)[..., -2:]
        return top_two[..., 1] - top_two[..., 0]
    return probs.max(axis=-1)


def run_policy(policy: ScalePolicy, infer: Callable[[Scale], np.ndarray]) -> PolicyResult:
    """Execute ``policy`` with ``infer(scale) -> probs`` (1-D probabilities for one scale).

    single: one call. cascade: call the scales in order, stopping after the first whose
    confidence (:func:`cascade_confidence`: top probability, or top-1 minus top-2 margin) is
    >= ``threshold`` (compared in the probabilities' dtype), or the last; the answer is that
    scale's probabilities, or the mean over the scales run when ``combine == "mean"``.
    ensemble: the mean over every scale.
    """
    if not isinstance(policy, ScalePolicy):
        raise TypeError(f"policy must be a ScalePolicy, got {type(policy).__name__}")
    run: list[Scale] = []
    outputs: list[np.ndarray] = []
    for scale in policy.scales:
        probs = np.asarray(infer(scale))
        run.append(scale)
        outputs.append(probs)
        if policy.mode == "single":
            break
        # Compared in the probabilities' own dtype (NumPy 2 casts the Python float threshold to
        # float32), as a calibration that vectorizes ``probs.max(axis=1) >= threshold`` does.
        if policy.mode == "cascade" and bool(cascade_confidence(probs, policy.confidence) >= policy.threshold):
            break
    if policy.mode == "ensemble" or (policy.mode == "cascade" and policy.combine == "mean" and len(outputs) > 1):
        answer = mean_probs(outputs)
    else:
        answer = np.asarray(outputs[-1], dtype=np.float32)
    return PolicyResult(probs=answer, scales_run=tuple(run), per_scale_probs=tuple(outputs))
