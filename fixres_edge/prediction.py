"""What a classification returns: ranked classes (:class:`Prediction`, :class:`TopK`), a failed
input's one line (:class:`PredictionError`), and the compiled softmax + top-k that makes them."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fixres_edge.policy import Scale


@dataclass(frozen=True)
class TopK:
    """One ranked class: ``index`` into the model output, its ``label`` and probability ``prob``."""

    index: int
    label: str
    prob: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "prob": self.prob}


@dataclass(frozen=True)
class Prediction:
    """The answer for one image.

    Attributes
    ----------
    top : tuple of TopK
        Best first.
    size : int
        Input size of the scale that answered (a cascade's last scale; an ensemble's last).
    scales : tuple of Scale
        The scales run, in order.
    timings_ms : dict
        ``decode``, ``preprocess`` and ``infer`` (summed over scales), ``postprocess`` (softmax,
        policy, top-k) and ``total`` (wall time of the call), in milliseconds.
    per_scale : tuple of dict
        Per scale run: ``size``, ``crop_pct``, ``preprocess``, ``infer`` (ms) and ``max_prob``
        (and ``variant`` when the scale names one).
    path : str or None
        The source file, when the input was a path.
    probs : ndarray
        float32 (num_classes,): the full answer.
    """

    top: tuple[TopK, ...]
    size: int
    scales: tuple[Scale, ...]
    timings_ms: dict = field(hash=False)
    per_scale: tuple = field(default=(), hash=False)
    path: str | None = None
    probs: np.ndarray | None = field(default=None, repr=False, compare=False, hash=False)

    ok = True

    @property
    def label(self) -> str:
        return self.top[0].label

    @property
    def index(self) -> int:
        return self.top[0].index

    @property
    def prob(self) -> float:
        return self.top[0].prob

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``path``, ``top``, ``size``, ``scales``, ``timings_ms``, ``per_scale``."""
        return {
            "path": self.path,
            "top": [t.to_dict() for t in self.top],
            "size": self.size,
            "scales": [s.to_dict() for s in self.scales],
            "timings_ms": dict(self.timings_ms),
            "per_scale": [dict(p) for p in self.per_scale],
        }


@dataclass(frozen=True)
class PredictionError:
    """An input that could not be classified (an entry of :meth:`Classifier.predict_batch`)."""

    path: str | None
    error: str
    kind: str = "ValueError"

    ok = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error}


# Above this many classes requested, sorting beats the compiled one-pass insertion (O(k n) at worst).
_SELECTION_TOP_K = 32


def probabilities_top_k(raw: np.ndarray, k: int, apply_softmax: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of ``raw`` (or a float32 copy when ``apply_softmax`` is False) and the indices of
    its ``k`` largest values, largest first (ties: lower index first), in one compiled call.

    Right after inference caches are cold and every separate numpy call costs several times
    its warm time; one kernel call (``fixres_edge.kernels.postprocess``) keeps post-processing a
    small fraction of inference.

    Returns
    -------
    (ndarray, ndarray)
        float32 (n,) probabilities and int64 (k,) indices.
    """
    raw = np.ascontiguousarray(raw, dtype=np.float32).reshape(-1)
    n = raw.shape[0]
    k = min(k, n)
    key = (n, k, bool(apply_softmax))
    launches = _postprocess_launches.__dict__.setdefault("launches", {})
    launch = launches.get(key)
    if launch is None:
        from fixres_edge._jit import kernel
        from fixres_edge.kernels.launch import PostprocessLaunch, pack

        if len(launches) >= 8:  # a handful of (classes, k) pairs per process
            launches.clear()
        packed = pack(PostprocessLaunch(n=n, k=k, apply_softmax=apply_softmax, indices=np.empty(k, np.int64)))
        launch = launches[key] = (kernel("probabilities_top_k"), packed, packed.keep[0])
    run, packed, indices = launch
    probs = np.empty(n, np.float32)
    packed.bind(raw, probs)
    run(packed)
    return probs, indices.copy()


# Post-processing launches per thread: (kernel, packed record, its indices buffer) per (n, k, softmax).
_postprocess_launches = threading.local()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over a 1-D vector (max subtracted first, sums in float64); float32 (n,) result."""
    return probabilities_top_k(logits, 0)[0]


def top_k(probs: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` largest values, largest first (ties: lower index first)."""
    n = probs.shape[0]
    k = min(k, n)
    if k <= _SELECTION_TOP_K:
        return probabilities_top_k(probs, k, apply_softmax=False)[1].tolist()
    # argpartition on the values themselves (no negated copy): the last k are the largest.
    candidates = np.argpartition(probs, n - k)[n - k:] if k < n else np.arange(n)
    pairs = zip(probs[candidates].tolist(), candidates.tolist())
    return [i for _, i in sorted(pairs, key=lambda pair: (-pair[0], pair[1]))]
