"""Labeled image folders, accuracy with confidence intervals, and the ``eval`` loop.

Labels come from the WordNet id (wnid) of each file: the start of its name
(``n01440764_tench.JPEG``, ``n01440764_10026.JPEG``) or its folder (ImageFolder layout
``DIR/n01440764/xyz.jpg``). The wnid becomes a class index through, in this order:

1. a class table: a TSV whose header names a ``wnid`` column (and optionally ``index``), or a text
   file whose lines start with a wnid (``LOC_synset_mapping.txt``); line order is the index when
   there is no ``index`` column. Given explicitly, or found as ``imagenet-classes.tsv`` /
   ``classes.tsv`` in DIR or its parent;
2. the class name after the wnid in the file name (``n01440764_great_white_shark`` ->
   "great white shark") matched against the model's labels. A name that two classes share
   ("crane", "maillot") is settled by the rule that class indices follow the sorted wnids,
   checked against the files whose names are unique;
3. ImageFolder with exactly as many wnid folders as the model has classes: the sorted folder
   order (torchvision's convention).

Readers follow ONNX Runtime's ``CalibrationDataReader`` shape: one method ``get_next()`` that
returns the next :class:`LabeledImage` or ``None`` at the end; anything with that method can feed
:func:`evaluate` and :func:`fixres_edge.calibrate.collect`.
"""
from __future__ import annotations

import bisect
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from fixres_edge.constants import IMAGE_EXTENSIONS

#: Class-table file names looked for in DIR and its parent when none is given.
CLASS_TABLE_NAMES = ("imagenet-classes.tsv", "classes.tsv")
WNID = re.compile(r"^n\d{8}$")
_WNID_PREFIX = re.compile(r"^(n\d{8})(?:_(.*))?$")
Z95 = 1.959963984540054  # two-sided 95 % normal quantile


# ---------------------------------------------------------------------- items and readers
@dataclass(frozen=True)
class LabeledImage:
    """One labeled input.

    Attributes
    ----------
    source : path or ndarray
        What :meth:`fixres_edge.runtime.Classifier.predict` takes (a file path or a BGR array).
    label : int
        Class index into the model output.
    wnid : str or None
        WordNet id the label came from.
    name : str
        Display name (the path relative to the folder).
    """

    source: Any
    label: int
    wnid: str | None = None
    name: str = ""


class Reader(Protocol):
    """Anything that yields labeled images one at a time (``None`` at the end)."""

    def get_next(self) -> LabeledImage | None: ...


class ListReader:
    """A reader over a fixed sequence of :class:`LabeledImage` (``rewind()`` starts again)."""

    def __init__(self, items: Iterable[LabeledImage]):
        self.items: tuple[LabeledImage, ...] = tuple(items)
        self._next = 0

    def get_next(self) -> LabeledImage | None:
        if self._next >= len(self.items):
            return None
        item = self.items[self._next]
        self._next += 1
        return item

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[LabeledImage]:
        return iter(self.items)


def read_all(reader: Reader) -> list[LabeledImage]:
    """Drain a reader into a list."""
    if not callable(getattr(reader, "get_next", None)):
        raise TypeError(f"a reader needs a get_next() method, got {type(reader).__name__}")
    items = []
    while (item := reader.get_next()) is not None:
        items.append(item)
    return items


# ---------------------------------------------------------------------- class tables
@dataclass(frozen=True)
class ClassTable:
    """wnid -> class index, with the file it came from (for messages)."""

    index: Mapping[str, int]
    source: str

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ClassTable":
        """Read a TSV with a ``wnid`` header column (and optional ``index``), or one wnid per line.

        Raises
        ------
        FileNotFoundError, ValueError
        """
        path = Path(path)
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"class table {path} is empty")
        header = [c.strip().lower() for c in lines[0].split("\t")]
        table: dict[str, int] = {}
        if "wnid" in header:
            w_col = header.index("wnid")
            i_col = header.index("index") if "index" in header else None
            for number, line in enumerate(lines[1:]):
                cells = line.split("\t")
                try:
                    wnid = cells[w_col].strip()
                    index = int(cells[i_col]) if i_col is not None else number
                except (IndexError, ValueError):
                    raise ValueError(f"class table {path}, line {number + 2}: expected the columns "
                                     f"{', '.join(header)}; got {line!r}") from None
                table[wnid] = index
        else:
            for number, line in enumerate(lines):
                wnid = line.split()[0]
                if not WNID.match(wnid):
                    raise ValueError(f"class table {path}, line {number + 1}: {wnid!r} is not a WordNet id "
                                     f"(n + 8 digits); expected a TSV with a 'wnid' header or one wnid per line")
                table[wnid] = number
        if len(set(table.values())) != len(table):
            raise ValueError(f"class table {path} maps two wnids to the same index")
        return cls(index=table, source=str(path))

    @classmethod
    def find(cls, root: str | os.PathLike) -> "ClassTable | None":
        """The first of :data:`CLASS_TABLE_NAMES` in ``root`` or its parent, or ``None``."""
        root = Path(root)
        for folder in (root, root.parent):
            for name in CLASS_TABLE_NAMES:
                candidate = folder / name
                if candidate.is_file():
                    return cls.from_file(candidate)
        return None


def _label_key(text: str) -> str:
    return " ".join(text.replace("_", " ").lower().split())


def _resolve_by_name(found: list[tuple[Path, str, str | None]], labels: Sequence[str]) -> dict[str, int]:
    """wnid -> index from class names in the file names (see the module docstring, rule 2)."""
    by_name: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_name.setdefault(_label_key(label), []).append(i)
    known: dict[str, int] = {}
    ambiguous: dict[str, list[int]] = {}
    for _, wnid, hint in found:
        if hint is None or wnid in known:
            continue
        candidates = by_name.get(_label_key(hint), [])
        if len(candidates) == 1:
            known[wnid] = candidates[0]
        elif len(candidates) > 1:
            ambiguous[wnid] = candidates
    if len(set(known.values())) != len(known):
        return {}  # two wnids claim one class: the names are not the model's labels
    # Indices follow the sorted wnids: a candidate index is consistent when every unambiguous
    # (wnid, index) pair is on the same side of it as of the wnid.
    pairs = sorted(known.items())
    wnids = [w for w, _ in pairs]
    indices = [i for _, i in pairs]
    for wnid, candidates in ambiguous.items():
        pos = bisect.bisect_left(wnids, wnid)
        low = indices[pos - 1] if pos > 0 else -1
        high = indices[pos] if pos < len(indices) else math.inf
        fitting = [c for c in candidates if low < c < high]
        if len(fitting) == 1:
            known[wnid] = fitting[0]
    return known


# ---------------------------------------------------------------------- labeled folders
def scan_folder(root: str | os.PathLike, recursive: bool = True) -> list[tuple[Path, str | None, str | None]]:
    """Image files under ``root`` in sorted order (by relative path), with their wnid and name hint.

    Returns
    -------
    list of (path, wnid or None, name hint or None)
        The wnid comes from the parent folder (ImageFolder) or the file name prefix; the name hint is
        the text after ``wnid_`` in the file name when it is not a number.
    """
    root = Path(root)
    if not root.is_dir():
        if root.exists():
            raise ValueError(f"not a directory: {root}")
        raise FileNotFoundError(f"directory not found: {root}")
    found = root.rglob("*") if recursive else root.iterdir()
    files = sorted((p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    out = []
    for path in files:
        match = _WNID_PREFIX.match(path.stem)
        wnid = hint = None
        if match:
            wnid, rest = match.group(1), match.group(2)
            hint = rest if rest and not rest.replace("_", "").isdigit() else None
        if path.parent != root and WNID.match(path.parent.name):
            wnid = path.parent.name  # ImageFolder: the folder decides
            if match and match.group(1) != wnid:
                hint = None
        out.append((path, wnid, hint))
    return out


def spread(items: Sequence, limit: int | None) -> list:
    """``limit`` evenly spaced items (deterministic), or all of them."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    return [items[i * len(items) // limit] for i in range(limit)]


class LabeledFolder(ListReader):
    """A labeled image folder as a reader (``get_next()``), in sorted, deterministic order.

    Parameters
    ----------
    root : path
        The folder (searched recursively).
    classes : path, ClassTable or None
        wnid -> index table; ``None`` looks for one next to the folder (module docstring, rule 1).
    labels : sequence of str, optional
        The model's class names, for rule 2.
    num_classes : int, optional
        The model's class count (rule 3, and a range check).
    limit : int, optional
        Keep only ``limit`` images, evenly spaced over the sorted list (a quick, still
        representative run).

    Attributes
    ----------
    items : tuple of LabeledImage
    skipped : tuple of str
        Image files without a wnid (not evaluated).
    labels_source : str
        How the labels were resolved (for reports).
    """

    def __init__(self, root: str | os.PathLike, classes=None, labels: Sequence[str] | None = None,
                 num_classes: int | None = None, limit: int | None = None):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        self.root = Path(root)
        found = scan_folder(self.root)
        if not found:
            raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {self.root}")
        labeled = [f for f in found if f[1] is not None]
        self.skipped = tuple(str(p.relative_to(self.root)) for p, wnid, _ in found if wnid is None)
        if not labeled:
            raise ValueError(f"no labeled images in {self.root}: file names must start with a WordNet id "
                             f"(n01440764_*.JPEG) or sit in wnid folders (DIR/n01440764/...)")
        mapping, self.labels_source = self._mapping(labeled, classes, labels, num_classes)
        items = []
        for path, wnid, _ in labeled:
            if wnid not in mapping:
                raise ValueError(f"cannot tell the class index of {wnid} ({path.relative_to(self.root)}) from "
                                 f"{self.labels_source}; give a class table (TSV with columns index, wnid)")
            index = mapping[wnid]
            if num_classes is not None and not 0 <= index < num_classes:
                raise ValueError(f"{path.relative_to(self.root)}: class index {index} of {wnid} is outside the "
                                 f"model's 0..{num_classes - 1}")
            items.append(LabeledImage(path, index, wnid, path.relative_to(self.root).as_posix()))
        self.total = len(items)
        super().__init__(spread(items, limit))

    def _mapping(self, labeled, classes, labels, num_classes) -> tuple[Mapping[str, int], str]:
        table = classes if isinstance(classes, ClassTable) else (
            ClassTable.from_file(classes) if classes is not None else ClassTable.find(self.root))
        if table is not None:
            return table.index, f"class table {table.source}"
        if labels:
            by_name = _resolve_by_name(labeled, labels)
            if by_name and all(wnid in by_name for _, wnid, _ in labeled):
                return by_name, "class names in the file names"
        wnids = sorted({wnid for _, wnid, _ in labeled})
        folders = {p.parent.name for p, _, _ in labeled if p.parent != self.root}
        if num_classes is not None and len(wnids) == num_classes and folders == set(wnids):
            return {w: i for i, w in enumerate(wnids)}, "sorted wnid folders"
        return {}, "the file names (no class table found)"


# ---------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95 % by default); ``(0, 1)`` when ``n == 0``."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds are exactly 0 and 1 when nothing or everything succeeded (rounding would miss them).
    low = 0.0 if successes <= 0 else max(0.0, center - half)
    high = 1.0 if successes >= n else min(1.0, center + half)
    return (low, high)


def bootstrap_interval(values: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray] | None = None,
                       reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (default: the mean) over the first axis of ``values``."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(reps, n))
    stats = values[picks].mean(axis=1) if statistic is None else np.array([statistic(values[p]) for p in picks])
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail], axis=0)
    return (float(low), float(high))


def paired_comparison(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Compare two per-image correctness vectors on the same images.

    Returns
    -------
    dict
        ``n``, ``a`` and ``b`` (accuracies), ``only_a`` / ``only_b`` (images that one got right and
        the other wrong), ``diff`` (b - a), ``diff_ci95`` (bootstrap over images) and ``p_mcnemar``
        (exact two-sided McNemar test on the discordant pairs).
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired vectors must be 1-D of the same length, got {a.shape} and {b.shape}")
    only_a = int((a & ~b).sum())
    only_b = int((b & ~a).sum())
    k, m = min(only_a, only_b), only_a + only_b
    p = 1.0 if m == 0 else min(1.0, 2.0 * sum(math.comb(m, i) for i in range(k + 1)) / 2.0 ** m)
    diff = b.astype(np.float64) - a.astype(np.float64)
    return {"n": int(a.size), "a": float(a.mean()) if a.size else math.nan,
            "b": float(b.mean()) if b.size else math.nan, "only_a": only_a, "only_b": only_b,
            "diff": float(diff.mean()) if diff.size else math.nan,
            "diff_ci95": list(bootstrap_interval(diff, seed=seed)), "p_mcnemar": p}


def label_ranks(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank of the true label in each row of ``probs`` (0 = top-1), with :func:`top_k`'s tie order.

    Parameters
    ----------
    probs : ndarray
        (N, C) scores.
    labels : ndarray
        (N,) int class indices.

    Returns
    -------
    ndarray
        (N,) int64: classes ranked before the label (higher score, or equal score and lower index).
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels, dtype=np.int64)
    true = np.take_along_axis(probs, labels[:, None], axis=1)
    before = (probs > true).sum(axis=1)
    ties = (probs == true) & (np.arange(probs.shape[1])[None, :] < labels[:, None])
    return (before + ties.sum(axis=1)).astype(np.int64)


# ---------------------------------------------------------------------- evaluation
@dataclass
class EvalResult:
    """Per-image outcomes of :func:`evaluate` (arrays aligned with ``names``)."""

    names: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    top5: list[list[int]] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=lambda: {
        "decode": [], "preprocess": [], "infer": [], "total": []})
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def top1_correct(self) -> np.ndarray:
        """(n,) bool: top-1 class equals the label."""
        return np.array([p == y for p, y in zip(self.predicted, self.labels)], dtype=bool)

    @property
    def top5_correct(self) -> np.ndarray:
        """(n,) bool: the label is among the first five classes."""
        return np.array([y in t[:5] for t, y in zip(self.top5, self.labels)], dtype=bool)

    def summary(self) -> dict[str, Any]:
        """JSON-ready totals: ``n``, ``top1``, ``top5`` (fractions) with ``*_ci95`` (Wilson),
        mean ms per stage (``infer_ms_mean``, ``total_ms_mean``, ...), ``answered`` counts, ``errors``."""
        n = self.n
        out: dict[str, Any] = {"n": n}
        for key, correct in (("top1", self.top1_correct), ("top5", self.top5_correct)):
            hits = int(correct.sum())
            out[key] = hits / n if n else None
            out[f"{key}_ci95"] = list(wilson_interval(hits, n))
        for stage, values in self.timings.items():
            out[f"{stage}_ms_mean"] = float(np.mean(values)) if values else None
        out["infer_ms_median"] = float(np.median(self.timings["infer"])) if n else None
        out["answered"] = dict(sorted(Counter(self.answered).items(), key=lambda kv: -kv[1]))
        out["errors"] = len(self.errors)
        return out


def evaluate(classifier, reader: Reader, *, progress: Callable[[], None] | None = None,
             on_result: Callable[[LabeledImage, Any], None] | None = None, decode_ahead: bool = True) -> EvalResult:
    """Classify every image of ``reader`` with ``classifier`` (its policy) and keep the outcomes.

    Parameters
    ----------
    classifier : fixres_edge.runtime.Classifier
    reader : Reader
    progress : callable, optional
        Called once per image (e.g. a progress bar's ``update``).
    on_result : callable, optional
        ``on_result(item, prediction_or_error)`` per image.
    decode_ahead : bool, default True
        Decode the next file on a worker thread while the current one is classified
        (``fixres_edge.prefetch``); its decode time is still reported per image.

    Returns
    -------
    EvalResult
        Images that fail to decode or classify are listed in ``errors`` and left out of ``n``.
    """
    from fixres_edge.errors import ITEM_ERRORS, one_line
    from fixres_edge.prefetch import ahead

    def decode(item: LabeledImage):
        if isinstance(item.source, np.ndarray):
            return item.source, 0.0
        start = time.perf_counter()
        image = classifier.decode(item.source)
        return image, (time.perf_counter() - start) * 1e3

    result = EvalResult()
    num_classes = len(classifier.labels) or None
    for item, decoded in ahead(iter(reader.get_next, None), decode, background=decode_ahead):
        name = item.name or str(item.source)
        try:
            if num_classes is not None and not 0 <= item.label < num_classes:
                raise ValueError(f"label {item.label} is outside the model's 0..{num_classes - 1}")
            image, decode_ms = decoded.result()
            prediction = classifier.predict(image, topk=5)
        except ITEM_ERRORS as error:
            result.errors.append((name, one_line(error)))
            if on_result is not None:
                on_result(item, error)
            if progress is not None:
                progress()
            continue
        result.names.append(name)
        result.labels.append(int(item.label))
        result.predicted.append(prediction.top[0].index)
        result.top5.append([t.index for t in prediction.top[:5]])
        result.answered.append(str(prediction.scales[-1]) if prediction.scales else str(prediction.size))
        for stage in result.timings:
            result.timings[stage].append(float(prediction.timings_ms.get(stage, 0.0)))
        if decode_ms:
            # Decoded ahead: what the image cost still counts, as if it had run in sequence.
            result.timings["decode"][-1] = decode_ms
            result.timings["total"][-1] += decode_ms
        if on_result is not None:
            on_result(item, prediction)
        if progress is not None:
            progress()
    return result


# ---------------------------------------------------------------------- progress bars
class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, enabled: bool | None = None):
    """A tqdm bar on stderr when stderr is a terminal and tqdm is installed; otherwise a no-op
    object with the same ``update()`` / ``close()``."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, file=sys.stderr, unit="img", leave=False, dynamic_ncols=True)


def format_percent(value: float | None, interval: Sequence[float] | None = None) -> str:
    """``88.6 % [85.5, 91.1]`` from fractions."""
    if value is None:
        return "-"
    text = f"{100 * value:.1f} %"
    if interval is not None:
        text += f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
    return text
