"""fixres_edge: FixRes-aware image preprocessing and ONNX Runtime classification for small CPUs.

Public names are imported lazily (PEP 562) so that ``import fixres_edge`` stays cheap: numba is
imported on the first preprocessing call and onnxruntime on the first ``Classifier``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Preprocessor": "fixres_edge.preprocess",
    "PreprocessConfig": "fixres_edge.preprocess",
    "warmup": "fixres_edge.warm",  # module named apart from the function: `fixres_edge.warmup()` stays callable
    "load_image": "fixres_edge.decode",
    "Classifier": "fixres_edge.runtime",
    "Prediction": "fixres_edge.prediction",
    "ModelCard": "fixres_edge.model",
    "Scale": "fixres_edge.policy",
    "ScalePolicy": "fixres_edge.policy",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'fixres_edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
