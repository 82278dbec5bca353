"""int8 for any classifier: ONNX Runtime static quantisation, calibrated through the model's own preprocessing.

:func:`quantize_model` takes a float32 ONNX classifier and labeled photos and writes an int8 copy:

1. the photos are split, in sorted order, into a calibration part (every ``calib_every``-th) and a
   held-out part (the rest);
2. the calibration photos go through the model's own preprocessing (a :class:`~fixres_edge.runtime.Classifier`
   built from its card, or from the preprocessing arguments for a card-less model) at every size of
   its FixRes scale set, since the int8 model will run at those sizes;
3. ONNX Runtime's ``quantize_static`` writes a QDQ model with per-channel int8 weights and uint8
   activations (U8S8: with int8 activations ONNX Runtime's CPU provider leaves the convolutions
   next to residual ``Add`` nodes in float32, which costs most of the speed-up);
   The stem convolution and the classifier stay float32 by default: they are the layers most
   sensitive to rounding, and together a small part of the work (a 3-channel convolution is a poor
   fit for int8 kernels anyway);
4. bias correction (:mod:`fixres_edge.bias_correction`) removes the mean output shift that rounding
   each layer's weights causes, measured on the calibration photos;
5. the int8 model gets the float model's metadata and card (plus ``"quantization"``; a card-less
   model gets the preprocessing it was calibrated with written as its card);
6. both models run on the held-out photos at every size (paired: each photo decoded once, both
   models see the same tensor) and are timed interleaved on this device.

The input model is only read. Needs the ``onnx`` package (the ``quantize`` extra).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from fixres_edge.errors import ITEM_ERRORS, one_line
from fixres_edge.policy import Scale

if TYPE_CHECKING:
    from fixres_edge.bias_correction import BiasCorrection

#: What the int8 card and metadata say about the quantisation.
QUANTIZATION_NOTE = "int8 QDQ per-channel static"
#: Added to it when the biases were corrected for the weights' rounding ...
CORRECTED = "bias-corrected"
#: ... and when the stem convolution and the classifier stayed float32.
FIRST_LAST_FLOAT = "stem and classifier float32"
#: ONNX Runtime calibration methods.
METHODS = ("minmax", "entropy", "percentile")
#: Operators that only a quantised graph contains.
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                           "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm", "ConvInteger", "MatMulInteger",
                           "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat", "QLinearSigmoid"})
#: Fewest readable photos: enough to calibrate on and to hold some out.
MIN_IMAGES = 10
DEFAULT_CALIB_EVERY = 5


def require_onnx():
    """The ``onnx`` module, or a one-line ``RuntimeError`` naming the extra that installs it."""
    try:
        import onnx
    except ImportError:
        raise RuntimeError("quantize needs the onnx package: pip install 'fixres-edge[quantize]'") from None
    return onnx


def check_float_model(proto, name: str) -> None:
    """One-line ``ValueError`` when the ONNX graph is already quantised."""
    found = sorted({node.op_type for node in proto.graph.node if node.op_type in QUANTIZED_OPS})
    if found:
        raise ValueError(f"{name} is already quantised (it has {', '.join(found[:3])} nodes); give the float model")


def split_calibration(count: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the calibration part (every ``every``-th of ``count``, from the first) and of the rest."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 2:
        raise ValueError(f"calib_every must be an integer >= 2 (some photos must be held out), got {every!r}")
    chosen = np.zeros(count, bool)
    chosen[::every] = True
    return np.flatnonzero(chosen), np.flatnonzero(~chosen)


class CalibrationReader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol (``get_next`` only): every calibration
    photo at every scale, preprocessed by ``classifier`` (each photo decoded once).

    Yields ``{input_name: (1, C, H, W) or (1, H, W, C) array}`` dicts, then ``None``.
    """

    def __init__(self, classifier, images: Sequence[np.ndarray | str | os.PathLike], scales: Sequence[Scale],
                 progress: Callable[[], None] | None = None):
        self._classifier = classifier
        self._images = list(images)
        self._scales = tuple(scales)
        self._progress = progress
        self._pending: list[np.ndarray] = []
        self._next = 0

    def get_next(self) -> dict | None:
        if not self._pending:
            if self._next >= len(self._images):
                return None
            image = self._classifier.decode(self._images[self._next], _policy_of(self._scales))
            self._next += 1
            # Channel order, mean/std and layout exactly as the classifier feeds the model.
            self._pending = [self._classifier.preprocessed(image, s) for s in reversed(self._scales)]
            if self._progress is not None:
                self._progress()
        return {self._classifier.input.name: self._pending.pop()}


def _policy_of(scales: Sequence[Scale]):
    from fixres_edge.policy import ScalePolicy

    return ScalePolicy(scales=tuple(s.geometry for s in dict.fromkeys(scales)),
                       mode="single" if len(scales) == 1 else "ensemble")


def _readable(classifier, images: Sequence, scales: Sequence[Scale]) -> tuple[list, list[tuple[str, str]]]:
    """The images that decode, and (name, one-line error) for those that do not."""
    policy = _policy_of(scales)
    good, errors = [], []
    for item in images:
        try:
            classifier.decode(item.source, policy)
        except ITEM_ERRORS as error:
            errors.append((item.name or str(item.source), one_line(error)))
        else:
            good.append(item)
    return good, errors


def int8_card(fp32_card, settings, note: str = QUANTIZATION_NOTE) -> dict:
    """The int8 model's card: the float card plus ``quantization``. A card-less model's int8 copy
    gets the preprocessing the calibration used (so that it describes itself); a carded model's
    copy gets only what was given explicitly over its card."""
    card = fp32_card.to_dict()
    scale = settings.policy.scales[0]
    used = {"crop_pct": scale.crop_pct, "interpolation": settings.interpolation, "antialias": settings.antialias,
            "mean": list(settings.mean), "std": list(settings.std)}
    explicit = settings.origin.get("scales") == "argument"
    if explicit:
        used["train_size"] = scale.size
    for key, value in used.items():
        given = explicit if key in ("crop_pct", "train_size") else settings.origin.get(key) == "argument"
        if fp32_card.is_empty or given:
            card[key] = value
    card["quantization"] = note
    return card


def write_metadata(fp32_proto, int8_path: Path, card: dict, note: str = QUANTIZATION_NOTE) -> None:
    """Copy the float model's metadata into the int8 file, with ``card`` under the card key."""
    import json

    import onnx

    from fixres_edge.model import CARD_KEY

    props = {p.key: p.value for p in fp32_proto.metadata_props}
    props[CARD_KEY] = json.dumps(card, sort_keys=True)
    props["quantization"] = note
    model = onnx.load(str(int8_path))
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = (fp32_proto.doc_string + "; " if fp32_proto.doc_string else "") + note
    onnx.save(model, str(int8_path))


def quantize_static_qdq(fp32_path: Path, out_path: Path, reader, *, method: str = "minmax",
                        exclude: Sequence[str] = (), correction_reader=None, threads: int | None = 1):
    """ONNX Runtime's pre-processing (shape inference, basic graph optimisations) then
    ``quantize_static`` (QDQ, per-channel, U8S8) from ``fp32_path`` into ``out_path``; then, given a
    ``correction_reader`` (same protocol as ``reader``), bias correction measured on its inputs.

    Returns the :class:`~fixres_edge.bias_correction.BiasCorrection`, or ``None`` without a reader.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"calibration method {method!r} is not valid; valid: {', '.join(METHODS)}")
    calibrate_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                        "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX's own shape inference suffices for a CNN; the symbolic one (sympy) only when present.
        quant_pre_process(str(fp32_path), str(prepared),
                          skip_symbolic_shape=importlib.util.find_spec("sympy") is None)
        # The histogram calibrators print their progress to stdout, where `quantize --json` writes.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(prepared), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=calibrate_method, nodes_to_exclude=list(exclude) or None)
        if correction_reader is None:
            return None
        from fixres_edge.bias_correction import correct_biases

        # Against the pre-processed float graph: the int8 graph's nodes carry its names and weights.
        return correct_biases(prepared, out_path, correction_reader, threads=threads)


def first_and_last_compute_nodes(proto) -> list[str]:
    """Names of the stem Conv and the classifier Gemm/MatMul (often the most quantisation-sensitive);
    none for a graph of fewer than three such layers, which would leave little or nothing in int8."""
    compute = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return [n.name for n in (compute[0], compute[-1]) if n.name] if len(compute) >= 3 else []


def quantization_note(corrected: bool, excluded: Sequence[str]) -> str:
    """What the int8 card and metadata say: :data:`QUANTIZATION_NOTE` and what was done beyond it."""
    parts = [QUANTIZATION_NOTE]
    if corrected:
        parts.append(CORRECTED)
    if excluded:
        parts.append(FIRST_LAST_FLOAT)
    return ", ".join(parts)


# ---------------------------------------------------------------------- report
@dataclass(frozen=True)
class SizeResult:
    """Both models at one scale on the held-out photos: top-1, paired differences, the mean KL divergence
    of int8's class probabilities from float32's (nats; a fidelity measure far less noisy than top-1 on
    a few hundred photos), latency (ms)."""

    scale: Scale
    top1_fp32: float
    top1_int8: float
    changed: int
    int8_only_right: int
    fp32_only_right: int
    kl: float = 0.0
    ms_fp32: float | None = None
    ms_int8: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if not self.ms_fp32 or self.ms_int8 is None else self.ms_int8 / self.ms_fp32

    def to_dict(self) -> dict[str, Any]:
        return {"scale": str(self.scale), "size": self.scale.size, "crop_pct": self.scale.crop_pct,
                "top1_fp32": self.top1_fp32, "top1_int8": self.top1_int8, "changed": self.changed,
                "int8_only_right": self.int8_only_right, "fp32_only_right": self.fp32_only_right, "kl": self.kl,
                "ms_fp32": self.ms_fp32, "ms_int8": self.ms_int8, "ratio": self.ratio}


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_model` did and measured."""

    model: str
    out: str
    method: str
    calibration: int
    held_out: int
    scales: tuple[Scale, ...]
    sizes: tuple[SizeResult, ...]
    calibration_scales: tuple[Scale, ...] = ()
    errors: tuple = ()
    excluded: tuple = ()
    bias_correction: BiasCorrection | None = None
    written: bool = True
    device: str = ""
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "out": self.out, "method": self.method, "calibration": self.calibration,
                "held_out": self.held_out, "scales": [str(s) for s in self.scales],
                "calibration_scales": [str(s) for s in self.calibration_scales],
                "sizes": [s.to_dict() for s in self.sizes], "errors": [list(e) for e in self.errors],
                "excluded": list(self.excluded),
                "bias_correction": None if self.bias_correction is None else self.bias_correction.to_dict(),
                "written": self.written, "device": self.device,
                "seconds": self.seconds}


def quantize_model(model, out, images: Sequence, *, sizes: Sequence[int] | None = None,
                   calib_every: int = DEFAULT_CALIB_EVERY, method: str = "minmax", exclude_first_last: bool = True,
                   bias_correction: bool = True, threads: int | None = 1, latency_repeats: int = 30,
                   max_drop: float | None = None,
                   progress: Callable[[], None] | None = None, **preprocessing) -> QuantizeReport:
    """Quantise ``model`` to int8 into ``out`` and compare the two (see the module docstring).

    Parameters
    ----------
    model : str or PathLike
        A float32 ONNX classifier (``"fp32"``: the bundled one). Never modified.
    out : str or PathLike
        Where the int8 model goes (not the input file).
    images : sequence of fixres_edge.evaluate.LabeledImage
        Labeled photos, e.g. ``LabeledFolder(DIR).items``; unreadable ones are left out and listed
        in ``errors``.
    sizes : sequence of int, optional
        Sizes to calibrate and compare at (default: the model's FixRes scale set).
    calib_every : int
        Every ``calib_every``-th photo (sorted order) calibrates; the others are held out.
    method : {"minmax", "entropy", "percentile"}
    exclude_first_last : bool
        Keep the stem convolution and the classifier in float32 (models with at least three
        Conv/Gemm/MatMul layers).
    bias_correction : bool
        Remove the mean output shift of each layer's int8 weights, measured on the calibration photos
        at every size (see :mod:`fixres_edge.bias_correction`).
    threads : int or None
        ONNX Runtime threads for the comparison and its latency.
    latency_repeats : int
        Interleaved timing rounds (0: no latency).
    max_drop : float, optional
        Do not write ``out`` when int8 top-1 falls more than this many points below float32 at any size.
    progress : callable, optional
        Called once per photo processed.
    **preprocessing
        ``Classifier`` preprocessing arguments for a card-less model (``crop_pct``, ``mean``, ``std``,
        ``interpolation``, ``antialias``, ``size``).

    Returns
    -------
    QuantizeReport
        ``sizes`` holds, per scale, held-out top-1 of both models (fractions) and their median
        latency in ms.
    """
    from fixres_edge.calibrate.collect import calibration_scales, collect, reference_scale, variant_scales
    from fixres_edge.calibrate.latency import device_description, measure_latency
    from fixres_edge.evaluate import ListReader
    from fixres_edge.model import resolve_model_path
    from fixres_edge.runtime import Classifier

    onnx = require_onnx()
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    source = resolve_model_path(model)
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"the int8 model's file name must end in .onnx, got {out}")
    if out.exists() and out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the input model; the input model is never overwritten")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"folder of --out not found: {out.parent}")
    if isinstance(latency_repeats, bool) or not isinstance(latency_repeats, int) or latency_repeats < 0:
        raise ValueError(f"latency_repeats must be a non-negative integer, got {latency_repeats!r}")
    fp32 = Classifier(source, threads=threads, **preprocessing)
    if fp32.input.dtype != "float32":
        raise ValueError(f"{source.name} takes {fp32.input.dtype} input; quantize needs a float32 model")
    proto = onnx.load(str(source))
    check_float_model(proto, source.name)
    scales = calibration_scales(fp32, sizes)
    good, errors = _readable(fp32, list(images), scales)
    if len(good) < MIN_IMAGES:
        raise ValueError(f"too few images: {len(good)} readable of {len(images)}; quantize needs at least "
                         f"{MIN_IMAGES} (every {calib_every}th calibrates, the rest are held out)")
    calib_index, held_index = split_calibration(len(good), calib_every)
    exclude = first_and_last_compute_nodes(proto) if exclude_first_last else []
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / (out.stem + ".onnx")
        t0 = time.perf_counter()
        # ONNX Runtime's histogram methods (entropy, percentile) stack every calibration tensor, so
        # they need one input size: the training size. MinMax only keeps extremes and sees them all.
        calibrate_at = scales if method == "minmax" else (reference_scale(fp32),)
        calibration = [good[i].source for i in calib_index]
        reader = CalibrationReader(fp32, calibration, calibrate_at, progress)
        # The shifts are averaged, not stacked, so every size of the scale set is measured.
        correction_reader = CalibrationReader(fp32, calibration, scales, progress) if bias_correction else None
        correction = quantize_static_qdq(source, candidate, reader, method=method, exclude=exclude,
                                         correction_reader=correction_reader, threads=threads)
        note = quantization_note(correction is not None and correction.corrected > 0, exclude)
        write_metadata(proto, candidate, int8_card(fp32.card, fp32.settings, note), note)
        _copy_labels(fp32, source, candidate)  # the card's labels file, which loading it needs
        seconds["quantize"] = time.perf_counter() - t0

        # Both models in one classifier (scales naming their variant): each held-out photo is decoded
        # once and both see the same tensors; latency is measured interleaved the same way.
        both = Classifier(source, threads=threads, **preprocessing)
        base, int8 = str(source.resolve()), str(candidate)
        joint = variant_scales(scales, [base, int8])
        t0 = time.perf_counter()
        scores, item_errors = collect(both, ListReader([good[i] for i in held_index]), joint, progress=progress)
        seconds["compare"] = time.perf_counter() - t0
        errors += item_errors
        latency = {}
        if latency_repeats:
            t0 = time.perf_counter()
            latency = measure_latency(both, joint, reference=reference_scale(both, base), repeats=latency_repeats)
            seconds["latency"] = time.perf_counter() - t0
        ranks = scores.ranks() == 0                                        # (N, 2S) top-1 correct
        results = []
        for i, scale in enumerate(scales):
            a, b = ranks[:, i], ranks[:, len(scales) + i]
            p, q = scores.probs[:, i].astype(np.float64), scores.probs[:, len(scales) + i].astype(np.float64)
            pa, pb = p.argmax(axis=1), q.argmax(axis=1)
            tiny = np.finfo(np.float32).tiny  # probabilities are float32: none is smaller unless zero
            kl = float(np.mean(np.sum(p * (np.log(np.maximum(p, tiny)) - np.log(np.maximum(q, tiny))), axis=1)))
            ms = [latency[s].cost if s in latency else None for s in (joint[i], joint[len(scales) + i])]
            results.append(SizeResult(scale.geometry, float(a.mean()), float(b.mean()), int((pa != pb).sum()),
                                      int((b & ~a).sum()), int((a & ~b).sum()), kl, *ms))
        drop = max(100 * (r.top1_fp32 - r.top1_int8) for r in results)
        written = max_drop is None or drop <= max_drop
        if written:
            # Copied, then renamed into place: a failure never leaves a half-written model behind.
            partial = out.with_name(out.name + ".part")
            shutil.copyfile(candidate, partial)
            os.replace(partial, out)
            _copy_labels(fp32, source, out)
    seconds["total"] = time.perf_counter() - started
    return QuantizeReport(model=str(source), out=str(out), method=method, calibration=len(calib_index),
                          held_out=scores.n, scales=tuple(scales), sizes=tuple(results),
                          calibration_scales=tuple(calibrate_at), errors=tuple(errors),
                          excluded=tuple(exclude), bias_correction=correction, written=written, device=device_description(threads),
                          seconds=seconds)


def _copy_labels(classifier, source: Path, out: Path) -> None:
    """The card's labels file, copied next to the int8 model when it is written to another folder."""
    name = classifier.card.labels_file
    if not name:
        return
    src, dst = source.parent / name, out.parent / name
    if src.is_file() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
