"""Collect calibration scores: run the model over labeled photos at every candidate scale, once.

:func:`collect` decodes each labeled image once and runs every scale, keeping the class
probabilities (:class:`Scores`: ``N x S x C`` float32, e.g. 10 MB for 500 images, 5 scales and
1000 classes). Everything after this step (the policy search) costs no inference, and the scores
can be saved and searched again (:meth:`Scores.save`, :meth:`Scores.load`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fixres_edge.errors import ITEM_ERRORS, one_line
from fixres_edge.evaluate import Reader, label_ranks
from fixres_edge.policy import (CONFIDENCES, DEFAULT_CROP_PCT, DEFAULT_TRAIN_SIZE, Scale, cascade_confidence,
                                default_scales)

SCORES_FORMAT = "fixres_edge.calibration_scores"


@dataclass(frozen=True, eq=False)
class Scores:
    """Probabilities of every image at every scale (the output of :func:`collect`).

    Attributes
    ----------
    scales : tuple of Scale
        S scales, in the order of the second axis of ``probs``.
    labels : ndarray
        (N,) int64 class indices.
    probs : ndarray
        (N, S, C) float32 class probabilities.
    names : tuple of str
        N image names.
    model : str or None
    """

    scales: tuple[Scale, ...]
    labels: np.ndarray
    probs: np.ndarray
    names: tuple[str, ...] = ()
    model: str | None = None

    def __post_init__(self):
        probs = np.asarray(self.probs, dtype=np.float32)
        labels = np.asarray(self.labels, dtype=np.int64)
        if probs.ndim != 3 or probs.shape[1] != len(self.scales):
            raise ValueError(f"probs must be (N, {len(self.scales)}, C), got shape {probs.shape}")
        if labels.shape != (probs.shape[0],):
            raise ValueError(f"labels must be ({probs.shape[0]},), got shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[2]):
            raise ValueError(f"labels must be class indices in 0..{probs.shape[2] - 1}")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "scales", tuple(Scale.coerce(s) for s in self.scales))
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def n(self) -> int:
        return int(self.probs.shape[0])

    def ranks(self) -> np.ndarray:
        """(N, S) int64 rank of the true label at each scale (0 = top-1)."""
        return np.stack([label_ranks(self.probs[:, s], self.labels) for s in range(len(self.scales))], axis=1)

    def confidence(self, kind: str = "max") -> np.ndarray:
        """(N, S) float32 confidence at each scale: the top probability (``"max"``) or the gap
        between the two largest (``"margin"``), as a cascade computes it at run time."""
        if kind not in CONFIDENCES:
            raise ValueError(f"unknown confidence {kind!r}; valid: {', '.join(CONFIDENCES)}")
        return cascade_confidence(self.probs, kind)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (reload with :meth:`load` to search again without inference)."""
        path = Path(path)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, probs=self.probs, labels=self.labels,
                                scales=np.array([[s.size, s.crop_pct] for s in self.scales], np.float64),
                                variants=np.array([s.variant or "" for s in self.scales], dtype=str),
                                names=np.array(self.names, dtype=str),
                                meta=np.array(json.dumps({"format": SCORES_FORMAT, "model": self.model})))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Scores":
        with np.load(path, allow_pickle=False) as data:
            try:
                meta = json.loads(str(data["meta"]))
                # Files written before scales named variants have no "variants" array.
                variants = [str(v) or None for v in data["variants"]] if "variants" in data else [None] * len(
                    data["scales"])
                scales = tuple(Scale(int(s), float(c), v) for (s, c), v in zip(data["scales"], variants))
                return cls(scales=scales, labels=data["labels"], probs=data["probs"],
                           names=tuple(str(n) for n in data["names"]), model=meta.get("model"))
            except KeyError as error:
                raise ValueError(f"{path} is not a calibration scores file (missing {error})") from None


# ---------------------------------------------------------------------- which scales
def calibration_scales(classifier, sizes: Sequence[int] | None = None,
                       crop_pcts: Sequence[float] | None = None) -> tuple[Scale, ...]:
    """The scale grid to calibrate: ``sizes`` x ``crop_pcts``, defaulting to the model's FixRes set
    (:func:`fixres_edge.policy.default_scales`): sizes at the card's crop_pct for a dynamic-size
    model, crop_pcts at the fixed size for a static one."""
    card, model_input = classifier.card, classifier.input
    defaults = default_scales(card, model_input.dynamic_size, model_input.static_size)
    sizes = sorted(set(sizes)) if sizes else sorted({s.size for s in defaults})
    # A crop_pct given to the classifier (a card-less model's preprocessing) counts as the card's.
    explicit = getattr(classifier, "_explicit_crop_pct", None)
    if crop_pcts:
        crops = sorted(set(float(c) for c in crop_pcts), reverse=True)
    elif model_input.dynamic_size:
        crops = [explicit or card.crop_pct or DEFAULT_CROP_PCT]
    else:
        crops = sorted({s.crop_pct for s in defaults} | ({float(explicit)} if explicit else set()), reverse=True)
    return tuple(classifier.scale(Scale(size, crop)) for size in sizes for crop in crops)


def reference_scale(classifier, variant: str | None = None) -> Scale:
    """The training size (or the static size) at the card's crop_pct, run by ``variant`` (default
    the classifier's own model): the cost a policy is compared to."""
    card, model_input = classifier.card, classifier.input
    size = model_input.static_size or card.train_size or DEFAULT_TRAIN_SIZE
    return classifier.scale(Scale(size, card.crop_pct or DEFAULT_CROP_PCT, variant))


def variant_scales(scales: Sequence[Scale], variants: Sequence[str | None]) -> tuple[Scale, ...]:
    """Every scale of ``scales`` run by every variant of ``variants`` (precision and size searched
    together): variant-major, so the first variant's scales come first."""
    if not variants:
        raise ValueError("give at least one model variant")
    return tuple(s.with_variant(v) for v in dict.fromkeys(variants) for s in scales)


# ---------------------------------------------------------------------- running the model
def collect(classifier, reader: Reader, scales: Sequence[Scale], *,
            progress: Callable[[], None] | None = None) -> tuple[Scores, list[tuple[str, str]]]:
    """Run every scale on every image of ``reader`` (each image decoded once).

    Parameters
    ----------
    classifier : fixres_edge.runtime.Classifier
    reader : Reader
        Yields :class:`fixres_edge.evaluate.LabeledImage`.
    scales : sequence of Scale
    progress : callable, optional
        Called once per image.

    Returns
    -------
    (Scores, list of (name, error))
        Images that fail to decode or run are left out and listed with a one-line reason.

    Notes
    -----
    A file is decoded once, at the largest short side any scale needs (JPEG DCT reduction as far as
    that allows), so every scale sees the same pixels; a policy run later decodes for its own scales
    only, which differs only for photos large enough to be reduced further.
    """
    from fixres_edge.decode import load_image

    scales = tuple(classifier.scale(s) for s in scales)
    if not scales:
        raise ValueError("calibration needs at least one scale")
    need = max(classifier.preprocessor(s).min_short_side for s in scales)
    num_classes = len(classifier.labels) or None
    rows: list[np.ndarray] = []
    labels: list[int] = []
    names: list[str] = []
    errors: list[tuple[str, str]] = []
    while (item := reader.get_next()) is not None:
        name = item.name or str(item.source)
        try:
            if num_classes is not None and not 0 <= item.label < num_classes:
                raise ValueError(f"label {item.label} is outside the model's 0..{num_classes - 1}")
            if isinstance(item.source, np.ndarray):
                image = item.source
            else:
                image = load_image(item.source, min_short_side=need if classifier.reduced_decode else None)
            rows.append(np.stack([classifier.probabilities(image, s)[0] for s in scales]))
        except ITEM_ERRORS as error:
            errors.append((name, one_line(error)))
        else:
            labels.append(int(item.label))
            names.append(name)
        if progress is not None:
            progress()
    if not rows:
        detail = f": {errors[0][0]}: {errors[0][1]}" if errors else ""
        raise ValueError(f"no image could be scored{detail}")
    return Scores(scales, np.array(labels), np.stack(rows), tuple(names), classifier.model.name), errors
