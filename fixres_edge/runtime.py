"""``Classifier``: ONNX Runtime image classification with the model's own preprocessing and a scale policy.

The flow of one :meth:`Classifier.predict`::

    source -> decode once (at the largest short side any scale needs)
           -> per scale: Preprocessor (cached per scale) into a reused input buffer -> ORT -> softmax
           -> policy (single / cascade / ensemble) -> top-k -> Prediction

Settings come from one resolver (:mod:`fixres_edge.settings`), with timm's precedence: explicit
argument, then the policy (scales only), then the model card, then a config file, then library
defaults. A float model that runs on assumed defaults says so once (:class:`PreprocessingWarning`).
Results are :mod:`fixres_edge.prediction`'s.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from fixres_edge.errors import ITEM_ERRORS, one_line
from fixres_edge.model import LoadedModel, ModelCard, ModelInput, check_size, generated_label, resolve_model_path
from fixres_edge.policy import Scale, ScalePolicy, run_policy
from fixres_edge.prediction import (
    Prediction, PredictionError, TopK, _SELECTION_TOP_K, probabilities_top_k, softmax, top_k,
)
from fixres_edge.settings import (
    PreprocessingWarning, _scale_fields, assumed_message, assumed_preprocessing, default_scale, describe_model,
    resolve_settings,
)

# Feeding a BGR image as "RGB" (and so on) hands the kernel's RGB output to a BGR-trained model:
# the channel flip costs nothing extra.
_SWAPPED_FORMAT = {"BGR": "RGB", "RGB": "BGR", "BGRA": "RGBA", "RGBA": "BGRA", "GRAY": "GRAY"}
# Camera formats have no swapped twin: for a BGR-trained model their RGB output is flipped after
# preprocessing (with mean/std reversed to match).
_YUV_FORMATS = ("NV12", "NV21", "I420", "YUYV")

#: Scales whose Preprocessor (and per-thread input buffer) a Classifier keeps, least recently used
#: dropped first: a policy has a few scales, and a stream of odd ``predict(size=...)`` values
#: must not grow memory without bound.
PREPROCESSOR_CACHE_SIZE = 8


def _lru_put(cache: OrderedDict, key, value):
    """``cache.setdefault(key, value)`` as the most recent entry, dropping the oldest beyond the bound."""
    value = cache.setdefault(key, value)
    cache.move_to_end(key)
    while len(cache) > PREPROCESSOR_CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _source_name(source: Any) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


CALIBRATED = "calibrated"


def calibrated_policy_path(model_path: Path, card: ModelCard | None) -> Path:
    """The policy file saved next to a model: ``<stem>.policy.json``, else ``<card name>.policy.json``."""
    model_path = Path(model_path)
    candidates = [model_path.with_name(model_path.stem + ".policy.json")]
    if card is not None and card.name:
        candidates.append(model_path.with_name(f"{card.name}.policy.json"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no calibrated policy next to {model_path.name} (looked for "
                            f"{', '.join(c.name for c in candidates)}); run fixres-edge calibrate --out <file>")


def default_policy() -> ScalePolicy | None:
    """The policy :class:`Classifier` runs when nothing is asked: the calibrated one shipped with the
    bundled model (``models/efficientnet_lite0.policy.json``), or None when it is not installed."""
    from fixres_edge.model import bundled_model_path

    try:
        path = calibrated_policy_path(bundled_model_path(), None)
    except FileNotFoundError:
        return None
    return ScalePolicy.load(path)


def _calibrated_policy(model, threads, providers) -> ScalePolicy:
    """The ``"calibrated"`` policy of ``model``: found by file name first, so that no session is
    opened just to read the card name (a policy may not run the model it sits next to)."""
    path = resolve_model_path(model)
    try:
        return ScalePolicy.load(calibrated_policy_path(path, None))
    except FileNotFoundError:
        from fixres_edge.model import load_model

        card = load_model(path, threads=threads, providers=providers).card
        return ScalePolicy.load(calibrated_policy_path(path, card))


# ---------------------------------------------------------------------- classifier
class Classifier:
    """An ONNX image classifier with its own preprocessing and a FixRes scale policy.

    Parameters
    ----------
    model : str, PathLike or None
        ``"fp32"``: the bundled EfficientNet-Lite0; ``"int8"``: its int8 version; otherwise the path
        of an ONNX classifier with one 4-D image input (NCHW or NHWC, float32, float16 or uint8,
        static or dynamic size). ``None``: the model of the policy's first scale, else the bundled
        fp32 model.
    policy : ScalePolicy, str, PathLike or None
        Which scales to run (a policy or a policy JSON file); its scales may name model variants
        (:class:`~fixres_edge.policy.Scale`), whose sessions open on first use. ``None``: when
        ``model``, ``size`` and ``crop_pct`` are all None too, the calibrated policy shipped with the
        bundled model (:func:`default_policy`); otherwise one scale at the model's training size
        (or its static size) and crop_pct. ``"calibrated"``: the policy file saved next to the model
        (``<model>.policy.json`` or ``<card name>.policy.json``), as ``fixres-edge calibrate``
        writes it; the bundled model ships one.
    threads : int or None
        Intra-op threads for ONNX Runtime (``None``: its default). Preprocessing runs on the
        calling thread (a small fraction of inference); parallelism across images belongs to
        the caller (``predict`` may be called from several threads).
    providers : list of str or None
        ONNX Runtime execution providers (default ``["CPUExecutionProvider"]``).
    size, crop_pct : optional
        One scale instead of the policy (explicit arguments win).
    interpolation, antialias, mean, std, crop : optional
        Override the model card's preprocessing (see :func:`resolve_settings`); ``mean`` and ``std``
        in [0, 1] units, RGB order, as in timm.
    train_size : int, optional
        The size the model was trained at, when its card or config does not say: the default size
        and the center of the derived FixRes scale set (:func:`fixres_edge.policy.fixres_sizes`).
    config : path, False or None
        A timm ``config.json`` or Hugging Face ``preprocessor_config.json`` describing the model
        (below the card, above the defaults). ``None``: a model without a card picks up the config
        files in its own folder; ``False``: read none.
    labels : path or sequence of str, optional
        Class names: a text file with one per line, or the names. Default: the card's, the
        config's, ImageNet-1k's for a 1000-class model, else ``"class <i>"``.
    reduced_decode : bool, default True
        Decode JPEG files at the largest DCT reduction (1/2, 1/4, 1/8) that still covers the largest
        scale: much faster for camera-sized photos, slightly different pixels (the DCT's own
        downscale replaces part of the resize). False decodes at full size.

    Notes
    -----
    A Classifier may be shared by threads: ONNX Runtime's ``run`` is thread-safe, and the reused
    input buffers are per thread.

    Examples
    --------
    >>> from fixres_edge import Classifier
    >>> clf = Classifier()                                    # doctest: +SKIP
    >>> clf.predict("photo.jpg").top[0].label                 # doctest: +SKIP
    'military uniform'
    """

    def __init__(self, model=None, policy=None, threads: int | None = None, providers=None, *,
                 size: int | None = None, crop_pct: float | None = None, interpolation: str | None = None,
                 antialias: bool | None = None, mean=None, std=None, crop: str | None = None,
                 reduced_decode: bool = True, train_size: int | None = None, config=None, labels=None):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        if not isinstance(reduced_decode, (bool, np.bool_)):
            raise TypeError(f"reduced_decode must be True or False, got {reduced_decode!r}")
        if isinstance(policy, (str, os.PathLike)) and policy != CALIBRATED:
            policy = ScalePolicy.load(policy)
        self.threads = threads
        explicit_scale = size is not None or crop_pct is not None
        if model is None and policy is None and not explicit_scale:
            policy = default_policy()  # nothing asked: the shipped best point (None when not installed)
        if policy == CALIBRATED:
            policy = _calibrated_policy(model, threads, providers)
        if policy is not None and not isinstance(policy, ScalePolicy):
            raise TypeError(f"policy must be a ScalePolicy or a path to a policy JSON file, "
                            f"got {type(policy).__name__}")
        # The classifier's own model (what a scale without a variant runs, and whose card and labels
        # every variant shares): the model argument, else the variant of the policy's first scale.
        if model is None and policy is not None and not explicit_scale:
            from fixres_edge.variants import variant_path

            base = variant_path(policy.scales[0].variant, policy.base_dir)
        else:
            base = resolve_model_path(model)
        from fixres_edge.variants import ModelVariants

        self._variants = ModelVariants(base, base_dir=policy.base_dir if policy is not None else None,
                                       threads=threads, providers=providers)
        self.model: LoadedModel = self._variants.base
        self._card, self.card_origin, self.config, self._labels, self.labels_source = describe_model(
            self.model.card, self.model.path, self.model.output.num_classes, config=config, labels=labels,
            train_size=train_size, crop_pct=crop_pct, interpolation=interpolation, antialias=antialias,
            mean=mean, std=std)
        self.settings = resolve_settings(
            self._card, self.model.input, policy=policy, size=size, crop_pct=crop_pct,
            interpolation=interpolation, antialias=antialias, mean=mean, std=std, crop=crop,
            model_name=self.model.name, card_origin=self.card_origin)
        for variant in self.policy.variants:
            self._variants.add(variant)  # a missing variant file is an error now, not mid-batch
        self._explicit_crop_pct = crop_pct
        self.reduced_decode = bool(reduced_decode)
        self._session = self.model.session
        self._input_name = self.model.input.name
        self._output_names = [self.model.output.name]
        self._output_kinds: dict[str, str] = {}
        self._swap = self.settings.channel_order == "BGR"
        self._pre: OrderedDict[Scale, Any] = OrderedDict()
        self._pre_flipped: OrderedDict[Scale, Any] = OrderedDict()
        self._pre_lock = threading.Lock()
        self._local = threading.local()
        for scale in self.policy.scales:
            self.preprocessor(scale)  # fail early on bad settings
        # Said once, after every setting was accepted.
        for note in (self.config.notes if self.config is not None else ()):
            warnings.warn(PreprocessingWarning(note), stacklevel=2)
        assumed = assumed_preprocessing(self.settings, self.model.input, self.card_origin)
        if assumed:
            warnings.warn(PreprocessingWarning(assumed_message(self.model.name, assumed)), stacklevel=2)

    # ------------------------------------------------------------------ properties
    @property
    def policy(self) -> ScalePolicy:
        return self.settings.policy

    @property
    def card(self) -> ModelCard:
        """The effective card: explicit arguments, the ONNX card, then the config file
        (``self.model.card`` is the ONNX card alone; ``card_origin`` says which field came from where)."""
        return self._card

    @property
    def input(self) -> ModelInput:
        return self.model.input

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def path(self) -> Path:
        return self.model.path

    @property
    def session(self):
        return self._session

    def __repr__(self) -> str:
        scales = ", ".join(map(str, self.policy.scales))
        return (f"Classifier(model={self.model.name!r}, mode={self.policy.mode!r}, scales=[{scales}], "
                f"layout={self.input.layout!r}, dtype={self.input.dtype!r}, threads={self.threads})")

    # ------------------------------------------------------------------ building blocks
    def scale(self, size: int | Scale) -> Scale:
        """A Scale for ``size`` at the resolved crop_pct (argument, card, then 0.875), checked against the
        model; a Scale naming a variant keeps it (its file is resolved, not opened, here)."""
        if isinstance(size, Scale):
            scale = size
        else:
            scale = default_scale(self.card, self.input, size, self._explicit_crop_pct)
        check_size(scale.size, self.card, self.input, self.model.name)
        if scale.variant is not None:
            self._variants.add(scale.variant)
        return scale

    def variant_model(self, variant: str | None = None) -> LoadedModel:
        """The model that runs scales of ``variant`` (None: :attr:`model`); its session is opened on
        first use."""
        return self._variants.get(variant)

    @property
    def open_models(self) -> tuple[Path, ...]:
        """Model files whose ONNX Runtime sessions this classifier has opened so far."""
        return self._variants.opened

    def preprocessor(self, scale: int | Scale):
        """The (cached) ``Preprocessor`` for one scale, matching the model input's layout and dtype
        (every variant shares it)."""
        scale = self.scale(scale).geometry
        with self._pre_lock:
            pre = self._pre.get(scale)
            if pre is not None:
                self._pre.move_to_end(scale)
                return pre
        from fixres_edge.preprocess import Preprocessor

        s = self.settings
        pre = Preprocessor(size=scale.size, crop_pct=scale.crop_pct, interpolation=s.interpolation,
                           antialias=s.antialias, mean=s.mean, std=s.std, input_format="BGR",
                           layout=s.layout, dtype=s.dtype, crop=s.crop)
        with self._pre_lock:
            return _lru_put(self._pre, scale, pre)

    def _buffer(self, scale: Scale, pre) -> np.ndarray:
        # Input buffers are reused across calls, one set per thread (ORT's run is thread-safe,
        # a shared buffer would not be).
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = OrderedDict()
        scale = scale.geometry
        buf = buffers.get(scale)
        if buf is None:
            return _lru_put(buffers, scale, np.empty(pre.out_shape(1), dtype=pre.config.dtype))
        buffers.move_to_end(scale)
        return buf

    def _flipped_preprocessor(self, scale: Scale):
        """For a BGR-trained model fed YUV frames: the scale's Preprocessor with mean/std in reverse
        order, whose RGB output becomes the model's BGR input once the channels are flipped."""
        scale = scale.geometry
        with self._pre_lock:
            pre = self._pre_flipped.get(scale)
            if pre is not None:
                self._pre_flipped.move_to_end(scale)
                return pre
        base = self.preprocessor(scale)
        pre = base.replace(mean=base.config.mean[::-1], std=base.config.std[::-1])
        with self._pre_lock:
            return _lru_put(self._pre_flipped, scale, pre)

    def preprocessed(self, image: np.ndarray, scale: int | Scale, input_format: str = "BGR", *,
                     width: int | None = None) -> np.ndarray:
        """The model input for one image at one scale, exactly as :meth:`predict` feeds it (channel
        order, mean/std, layout and dtype of the model): a new ``(1, C, H, W)`` or ``(1, H, W, C)``
        array (calibration data for quantisation)."""
        scale = self.scale(scale)
        return self._prepare(image, scale, input_format, width).copy()

    def _prepare(self, image: np.ndarray, scale: Scale, input_format: str, width: int | None) -> np.ndarray:
        """Preprocess one image into this thread's reused buffer for ``scale``; returns the buffer."""
        pre = self.preprocessor(scale)
        buf = self._buffer(scale, pre)
        # Upper-cased before the swap lookup ("bgr" must be swapped for a BGR model too); unknown
        # names go on to the Preprocessor, which rejects them with the valid choices.
        fmt = input_format.upper() if isinstance(input_format, str) else input_format
        flip = False
        if self._swap:
            if fmt in _YUV_FORMATS:
                pre, flip = self._flipped_preprocessor(scale), True
            else:
                fmt = _SWAPPED_FORMAT.get(fmt, fmt)
        pre(image, out=buf, input_format=fmt, width=width)
        if flip:
            # numpy buffers overlapping assignments, so the in-place reversal is safe.
            if self.input.layout == "NCHW":
                buf[0] = buf[0, ::-1]
            else:
                buf[0] = buf[0, ..., ::-1]
        return buf

    def _run_scale(self, image: np.ndarray, scale: Scale, input_format: str, width: int | None = None
                   ) -> tuple[np.ndarray, float, float]:
        """Preprocess + infer one scale: (raw output float32 (num_classes,), preprocess ms, infer ms)."""
        t0 = time.perf_counter()
        buf = self._prepare(image, scale, input_format, width)
        model = self.model if scale.variant is None else self._variants.get(scale.variant)
        t1 = time.perf_counter()
        try:
            raw = model.session.run([model.output.name], {model.input.name: buf})[0]
        except Exception as error:  # ORT's pybind errors do not derive from RuntimeError
            raise RuntimeError(f"inference failed at {scale}: {one_line(error)}") from None
        t2 = time.perf_counter()
        raw = np.asarray(raw, dtype=np.float32).reshape(-1)
        return raw, (t1 - t0) * 1e3, (t2 - t1) * 1e3

    def _output_kind_of(self, raw: np.ndarray, variant: str | None = None) -> str:
        """"probabilities" or "logits": what the model (of ``variant``) outputs (decided once, on
        its first output)."""
        kind = self._output_kinds.get(variant) or self.variant_model(variant).card.output
        if kind is None:
            # A model without a card saying so: outputs that are non-negative and sum to 1 over at
            # least 10 classes come from a softmax in the graph (a second one would flatten them).
            # Decided on the first output, since it is a property of the model.
            looks_like_probs = (raw.shape[0] >= 10 and float(raw.min()) >= 0.0
                                and abs(float(raw.sum(dtype=np.float64)) - 1.0) < 1e-3)
            kind = "probabilities" if looks_like_probs else "logits"
        self._output_kinds[variant] = kind
        return kind

    def _to_probs(self, raw: np.ndarray, variant: str | None = None) -> np.ndarray:
        if self._output_kind_of(raw, variant) == "probabilities":
            return raw.astype(np.float32, copy=True)
        return softmax(raw)

    def _probs_and_top(self, raw: np.ndarray, k: int, variant: str | None = None) -> tuple[np.ndarray, list[int]]:
        """Probabilities and the indices of the ``k`` best, in one compiled call (right after
        inference, caches are cold and every separate numpy or kernel call costs ~10 us)."""
        kind = self._output_kind_of(raw, variant)
        n = raw.shape[0]
        if k > min(n, _SELECTION_TOP_K):
            probs = self._to_probs(raw, variant)
            return probs, top_k(probs, k)
        probs, indices = probabilities_top_k(raw, k, apply_softmax=kind == "logits")
        return probs, indices.tolist()

    def logits(self, image_bgr: np.ndarray, scale: int | Scale, input_format: str = "BGR", *,
               width: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """The model's raw output for one image at one scale.

        Returns
        -------
        (ndarray, dict)
            float32 (num_classes,) (logits for most classifiers; ORT allocates it per call, so it is
            the caller's to keep) and timings in ms
            (``preprocess``, ``infer``).
        """
        raw, pre_ms, infer_ms = self._run_scale(image_bgr, self.scale(scale), input_format, width)
        return raw, {"preprocess": pre_ms, "infer": infer_ms}

    def probabilities(self, image_bgr: np.ndarray, scale: int | Scale, input_format: str = "BGR", *,
                      width: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Class probabilities for one image at one scale (eval and calibration use this).

        Returns
        -------
        (ndarray, dict)
            float32 (num_classes,) summing to 1, and timings in ms (``preprocess``, ``infer``).
        """
        scale = self.scale(scale)
        raw, pre_ms, infer_ms = self._run_scale(image_bgr, scale, input_format, width)
        return self._to_probs(raw, scale.variant), {"preprocess": pre_ms, "infer": infer_ms}

    def decode(self, source, policy: ScalePolicy | None = None) -> np.ndarray:
        """Decode a path/bytes/file object for ``policy`` (JPEG reduced as far as its largest scale allows)."""
        from fixres_edge.decode import load_image

        policy = policy or self.policy
        if not self.reduced_decode:
            return load_image(source)
        need = max(self.preprocessor(s).min_short_side for s in policy.scales)
        return load_image(source, min_short_side=need)

    def warmup(self, sizes: Iterable[int | Scale] | None = None) -> None:
        """Run each scale of the policy (or ``sizes``) once on a blank image, so that kernel
        compilation and ORT's first-run setup are not counted in the first prediction's timings.

        This opens the session of every variant the scales name, escalation-only ones included
        (which a cascade otherwise opens when the first image escalates)."""
        for scale in (self.policy.scales if sizes is None else sizes):
            scale = self.scale(scale)
            side = self.preprocessor(scale).min_short_side
            raw, _, _ = self._run_scale(np.zeros((side, side + side // 3, 3), np.uint8), scale, "BGR")
            top_k(self._to_probs(raw, scale.variant), 5)  # the post-processing kernels compile here too
            self._probs_and_top(raw, 5, scale.variant)

    # ------------------------------------------------------------------ prediction
    def predict(self, image_or_path, topk: int = 5, *, size: int | None = None,
                input_format: str = "BGR", width: int | None = None) -> Prediction:
        """Classify one image.

        Parameters
        ----------
        image_or_path : str, PathLike, bytes, file object, or ndarray
            A file (decoded once, reduced as far as the largest scale allows; a 1-D uint8 array
            holds encoded bytes, as ``np.fromfile`` gives) or an 8-bit image array in
            ``input_format`` (default BGR, OpenCV's order).
        topk : int
            Number of classes in ``Prediction.top``.
        size : int, optional
            Run this one size (at the resolved crop_pct) instead of the policy.
        input_format : str, default "BGR"
            Layout of an image array (see ``Preprocessor``); decoded files are always BGR.
        width : int, optional
            YUV frames with padded rows only: the image width (e.g. picamera2's I420 arrays are
            ``(H * 3 // 2, stride)``).

        Returns
        -------
        Prediction
        """
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive integer, got {topk!r}")
        start = time.perf_counter()
        policy = self.policy if size is None else ScalePolicy.single(*_scale_fields(self.scale(size)))
        path = None
        if isinstance(image_or_path, np.ndarray) and not (image_or_path.ndim == 1 and image_or_path.dtype == np.uint8):
            image, decode_ms = image_or_path, 0.0
        elif isinstance(image_or_path, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)) or hasattr(
                image_or_path, "read"):
            path = _source_name(image_or_path)
            image = self.decode(image_or_path, policy)
            decode_ms = (time.perf_counter() - start) * 1e3
            input_format, width = "BGR", None  # what the decoder returns
        else:
            raise TypeError(f"expected a path, bytes, a file object or an image array, "
                            f"got {type(image_or_path).__name__}")
        per_scale: list[dict[str, float]] = []
        post_ms = 0.0
        last = [None, None]  # the last scale's probabilities and their top-k indices

        def infer(scale: Scale) -> np.ndarray:
            nonlocal post_ms
            raw, pre_ms, infer_ms = self._run_scale(image, scale, input_format, width)
            t0 = time.perf_counter()
            probs, best = self._probs_and_top(raw, topk, scale.variant)
            post_ms += (time.perf_counter() - t0) * 1e3
            last[0], last[1] = probs, best
            entry = {"size": scale.size, "crop_pct": scale.crop_pct, "preprocess": pre_ms,
                     "infer": infer_ms, "max_prob": float(probs[best[0]])}
            if scale.variant is not None:
                entry["variant"] = scale.variant
            per_scale.append(entry)
            return probs

        result = run_policy(policy, infer)
        t0 = time.perf_counter()
        probs = result.probs
        # A single scale (or a cascade that stopped at its last run) answers with the probabilities
        # whose top-k is known; a combination of scales needs its own.
        best = last[1] if probs is last[0] else top_k(probs, topk)
        top = tuple(TopK(i, self._label(i), float(probs[i])) for i in best)
        post_ms += (time.perf_counter() - t0) * 1e3
        timings = {
            "decode": decode_ms,
            "preprocess": sum(p["preprocess"] for p in per_scale),
            "infer": sum(p["infer"] for p in per_scale),
            "postprocess": post_ms,
            "total": (time.perf_counter() - start) * 1e3,
        }
        return Prediction(top=top, size=result.answered_by.size, scales=result.scales_run, timings_ms=timings,
                          per_scale=tuple(per_scale), path=path, probs=probs)

    def _label(self, index: int) -> str:
        labels = self._labels
        return labels[index] if index < len(labels) else generated_label(index)

    def predict_batch(self, items: Iterable, topk: int = 5, *, size: int | None = None
                      ) -> list[Prediction | PredictionError]:
        """Classify several inputs; an input that fails gives a :class:`PredictionError` entry
        (``.ok`` is False) instead of stopping the others."""
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive integer, got {topk!r}")
        if isinstance(items, (str, bytes, bytearray, memoryview, os.PathLike)) or (
                isinstance(items, np.ndarray) and items.ndim < 4):
            raise TypeError(f"items must be a list of images or paths, got one {type(items).__name__}; "
                            f"use predict() for a single input, or wrap it in a list")
        try:
            items = iter(items)
        except TypeError:
            raise TypeError(f"items must be a list (or other iterable) of images or paths, "
                            f"got {type(items).__name__}") from None
        results: list[Prediction | PredictionError] = []
        for item in items:
            try:
                results.append(self.predict(item, topk, size=size))
            except ITEM_ERRORS as error:
                results.append(PredictionError(path=_source_name(item), error=one_line(error),
                                               kind=type(error).__name__))
        return results
