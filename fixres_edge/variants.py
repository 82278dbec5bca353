"""The model variants a classifier runs: one ONNX Runtime session per model file, opened once, lazily.

A policy's scales may name a variant of the network (:class:`fixres_edge.policy.Scale`'s
``variant``): ``"fp32"`` / ``"int8"`` for the bundled model, or an ONNX file, relative to the
policy file's folder. :class:`ModelVariants` turns those names into files when the classifier is
built (so a missing file is an error then, not in the middle of a batch) and opens each file's
session the first time a scale needs it: a cascade whose higher precision only runs for uncertain
images pays that session's memory only once an image escalates (``Classifier.warmup`` opens them
all). Variants must be interchangeable: same input layout, element type, static size and number
of classes as the classifier's model, whose card and labels they share.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from fixres_edge.model import LoadedModel, load_model, resolve_model_path
from fixres_edge.policy import BUNDLED_VARIANTS, check_variant


def variant_path(variant: str | os.PathLike | None, base_dir: str | os.PathLike | None = None) -> Path:
    """The ONNX file of a variant name.

    ``None`` and ``"fp32"`` are the bundled float32 model, ``"int8"`` the bundled int8 model; any
    other variant is a file name ending in ``.onnx``, relative to ``base_dir`` (the policy file's
    folder; default the current directory) unless absolute.

    Raises
    ------
    ValueError
        A name that is neither a bundled variant nor an ``.onnx`` file.
    FileNotFoundError
        A variant file that does not exist.
    """
    variant = check_variant(variant)
    if variant is None or variant in BUNDLED_VARIANTS:
        return resolve_model_path(variant)
    path = Path(variant)
    if not path.is_absolute():
        path = Path(base_dir) / path if base_dir is not None else path
    if not path.is_file():
        where = f" (relative to the policy's folder {base_dir})" if base_dir is not None and not Path(
            variant).is_absolute() else ""
        raise FileNotFoundError(f"model variant file not found: {path}{where}")
    return path


def _same(model: LoadedModel, reference: LoadedModel) -> None:
    """One-line ``ValueError`` when ``model`` cannot stand in for ``reference``."""
    checks = (("input layout", model.input.layout, reference.input.layout),
              ("input element type", model.input.dtype, reference.input.dtype),
              ("static input size", model.input.static_size, reference.input.static_size),
              ("number of classes", model.output.num_classes, reference.output.num_classes))
    for what, got, expected in checks:
        if got != expected:
            raise ValueError(f"model variant {model.path.name} does not match {reference.path.name}: "
                             f"{what} {got} vs {expected}")


class ModelVariants:
    """The ONNX files a classifier's scales run, each opened at most once.

    Parameters
    ----------
    base : Path
        The classifier's own model: what a scale without a variant runs. Opened at once.
    base_dir : str or None
        Folder that variant file names are relative to (the policy file's).
    threads, providers
        As for :func:`fixres_edge.model.load_model`.
    """

    def __init__(self, base: Path, *, base_dir: str | None = None, threads: int | None = None,
                 providers=None):
        self._base_dir = base_dir
        self._threads = threads
        self._providers = providers
        self._paths: dict[str | None, Path] = {None: Path(base)}
        # Opened models by resolved file, so that "fp32" and the bundled base share one session.
        self._open: dict[Path, LoadedModel] = {}
        self._lock = threading.Lock()
        self.base = self.get(None)

    def add(self, variant: str | None) -> Path:
        """Resolve ``variant`` to its file (checked to exist) without opening it; returns the path."""
        path = self._paths.get(variant)
        if path is None:
            path = self._paths[variant] = variant_path(variant, self._base_dir)
        return path

    def get(self, variant: str | None) -> LoadedModel:
        """The opened model of ``variant`` (its session is created on first use, then reused)."""
        path = self.add(variant)
        key = path.resolve()
        model = self._open.get(key)
        if model is not None:
            return model
        with self._lock:  # two threads escalating at once must not open the file twice
            model = self._open.get(key)
            if model is None:
                model = load_model(path, threads=self._threads, providers=self._providers)
                if self._open:
                    _same(model, self.base)
                self._open[key] = model
        return model

    def is_open(self, variant: str | None) -> bool:
        """True once ``variant``'s session exists."""
        path = self._paths.get(variant)
        return path is not None and path.resolve() in self._open

    @property
    def opened(self) -> tuple[Path, ...]:
        """Files whose sessions are open, in the order they were opened."""
        return tuple(m.path for m in self._open.values())
