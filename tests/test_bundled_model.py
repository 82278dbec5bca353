"""The bundled EfficientNet-Lite0 ONNX models: loadable, dynamic H/W, a valid card, labels, a sane run.

Each test skips when its model file is absent (for example a checkout without the ONNX files).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
MODEL_FILES = {"fp32": "efficientnet_lite0.onnx", "int8": "efficientnet_lite0_int8.onnx"}
LABELS = MODELS_DIR / "imagenet_labels.txt"
CARD_KEY = "fixres_edge.card"
CARD_TYPES = {
    "name": str,
    "source": str,
    "license": str,
    "train_size": int,
    "crop_pct": float,
    "interpolation": str,
    "antialias": bool,
    "mean": list,
    "std": list,
    "layout": str,
    "channel_order": str,
    "size_stride": int,
    "scales": list,
    "num_classes": int,
    "labels_file": str,
}


def _path(kind: str) -> Path:
    path = MODELS_DIR / MODEL_FILES[kind]
    if not path.is_file():
        pytest.skip(f"{path.name} not present")
    return path


def _session(path: Path, optimize: bool = True):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # Reading metadata needs no graph optimization; skipping it keeps the emulated run short.
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _card(session) -> dict:
    metadata = session.get_modelmeta().custom_metadata_map
    assert CARD_KEY in metadata, f"no {CARD_KEY} in {sorted(metadata)}"
    return json.loads(metadata[CARD_KEY])


def _smooth_image(size: int, seed: int) -> np.ndarray:
    """A deterministic, photo-like (low-frequency) input in the model's normalized range, (1, 3, s, s)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(3, 8, 8))
    up = np.kron(coarse, np.ones((size // 8, size // 8)))
    return ((up - 127.0) / 128.0)[None].astype(np.float32)


@pytest.mark.aarch64
@pytest.mark.parametrize("kind", sorted(MODEL_FILES))
def test_card_is_valid(kind):
    card = _card(_session(_path(kind), optimize=False))
    for key, kind_of in CARD_TYPES.items():
        assert isinstance(card.get(key), kind_of), f"{key}: {card.get(key)!r} is not {kind_of.__name__}"
    assert card["name"] == "efficientnet_lite0"
    assert card["license"] == "Apache-2.0"
    # The weights expect (x - 127) / 128 on 0..255 pixels, stored in [0, 1] units.
    assert card["mean"] == [127 / 255] * 3
    assert card["std"] == [128 / 255] * 3
    assert (card["layout"], card["channel_order"], card["interpolation"]) == ("NCHW", "RGB", "bilinear")
    assert card["train_size"] == 224 and 0 < card["crop_pct"] <= 1
    assert card["train_size"] in card["scales"]
    assert all(isinstance(s, int) and s % card["size_stride"] == 0 for s in card["scales"])
    assert card["num_classes"] == 1000
    assert (MODELS_DIR / card["labels_file"]).is_file()
    if kind == "int8":
        assert "int8" in card["quantization"]


@pytest.mark.aarch64
def test_labels_file_has_one_name_per_class():
    if not LABELS.is_file():
        pytest.skip(f"{LABELS.name} not present")
    names = LABELS.read_text(encoding="utf-8").splitlines()
    assert len(names) == 1000
    assert all(name and name == name.strip() for name in names)
    assert (names[0], names[1], names[999]) == ("tench", "goldfish", "toilet tissue")


@pytest.mark.parametrize("kind", sorted(MODEL_FILES))
def test_input_is_float_nchw_with_dynamic_batch_height_width(kind):
    session = _session(_path(kind), optimize=False)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.type == "tensor(float)" and out.type == "tensor(float)"
    n, c, h, w = inp.shape
    assert c == 3
    assert all(isinstance(d, str) for d in (n, h, w)), inp.shape
    assert out.shape[1] == 1000


@pytest.mark.parametrize("kind", sorted(MODEL_FILES))
def test_run_at_224_gives_finite_logits(kind):
    session = _session(_path(kind))
    x = _smooth_image(224, seed=0)
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    assert logits.shape == (1, 1000) and logits.dtype == np.float32
    assert np.all(np.isfinite(logits))
    # Same input, same output: nothing stateful or random in the graph.
    (again,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_array_equal(logits, again)


@pytest.mark.parametrize("kind", sorted(MODEL_FILES))
def test_runs_at_other_multiples_of_32_and_batches(kind):
    session = _session(_path(kind))
    name = session.get_inputs()[0].name
    single = [session.run(None, {name: _smooth_image(256, seed)})[0] for seed in (1, 2)]
    batch = np.concatenate([_smooth_image(256, seed) for seed in (1, 2)])
    (logits,) = session.run(None, {name: batch})
    assert logits.shape == (2, 1000)
    np.testing.assert_allclose(logits, np.concatenate(single), atol=1e-4)
    (wide,) = session.run(None, {name: np.zeros((1, 3, 192, 288), np.float32)})
    assert wide.shape == (1, 1000) and np.all(np.isfinite(wide))


def test_int8_logits_follow_fp32():
    fp32, int8 = _session(_path("fp32")), _session(_path("int8"))
    for seed in (3, 4):
        x = _smooth_image(224, seed)
        a = fp32.run(None, {fp32.get_inputs()[0].name: x})[0].ravel()
        b = int8.run(None, {int8.get_inputs()[0].name: x})[0].ravel()
        # Quantization moves logits a little; a broken scale or channel axis decorrelates them.
        assert np.corrcoef(a, b)[0, 1] > 0.9


def test_bundled_models_are_package_data():
    # Found through the runtime's lookup, installed or editable (the wheel's contents are checked
    # in test_packaging.py).
    from fixres_edge.model import bundled_model_path

    _path("fp32")
    fp32 = bundled_model_path()
    assert fp32.name == MODEL_FILES["fp32"] and fp32.is_file()
    assert bundled_model_path(int8=True).is_file()
    assert fp32.with_name(LABELS.name).is_file()
