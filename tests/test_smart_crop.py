"""Smart crop: the window moves toward an off-center object along the long axis, never leaves the image,
keeps the center when there is no reason to move, and the Preprocessor crops where it says."""
from __future__ import annotations

import numpy as np
import pytest

from fixres_edge import geometry
from fixres_edge.preprocess import PreprocessConfig, Preprocessor
from fixres_edge.smart_crop import best_window, edge_profile, smart_shift


def scene(h: int, w: int, where: str, seed: int = 0, fmt: str = "BGR") -> np.ndarray:
    """A flat gray image with a textured object near one end (``where``: left/right/top/bottom)."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), 120, np.uint8)
    oh, ow = h // 3, w // 3
    top = {"top": h // 20, "bottom": h - oh - h // 20}.get(where, (h - oh) // 2)
    left = {"left": w // 20, "right": w - ow - w // 20}.get(where, (w - ow) // 2)
    image[top:top + oh, left:left + ow] = rng.integers(0, 256, (oh, ow, 3), dtype=np.uint8)
    if fmt == "GRAY":
        return image[:, :, 1].copy()
    if fmt in ("BGRA", "RGBA"):
        return np.dstack([image, np.full((h, w), 255, np.uint8)])
    return image


def config(size=224, crop_pct=0.875) -> PreprocessConfig:
    return PreprocessConfig(size=size, crop_pct=crop_pct, crop="smart")


def window(h, w, cfg, shift):
    """The crop window (top, left) without the planner's clamping, to check the shift itself."""
    g = geometry.plan_resize_crop(h, w, cfg.size, cfg.crop_pct)
    return g, g.top + shift[0], g.left + shift[1]


@pytest.mark.aarch64
@pytest.mark.parametrize("where, axis, sign", [("right", 1, 1), ("left", 1, -1), ("bottom", 0, 1), ("top", 0, -1)])
def test_moves_toward_the_object(where, axis, sign):
    h, w = (300, 600) if axis == 1 else (600, 300)
    shift = smart_shift(scene(h, w, where), "BGR", config())
    assert shift[1 - axis] == 0                          # only along the long axis
    assert np.sign(shift[axis]) == sign and abs(shift[axis]) > 20


@pytest.mark.aarch64
def test_keeps_the_center_without_a_reason():
    cfg = config()
    flat = np.full((300, 600, 3), 90, np.uint8)
    assert smart_shift(flat, "BGR", cfg) == (0, 0)
    assert smart_shift(scene(300, 600, "center"), "BGR", cfg) == (0, 0)
    square = scene(400, 400, "right")
    assert smart_shift(square, "BGR", cfg) == (0, 0)          # no long axis
    assert smart_shift(scene(300, 600, "right"), "BGR", config(crop_pct=1.0)) != (0, 0)
    # Nothing to move when the crop spans the whole long side.
    assert smart_shift(scene(224, 230, "right"), "BGR", config(crop_pct=1.0)) == (0, 0)


@pytest.mark.aarch64
@pytest.mark.parametrize("fmt", ["RGB", "BGRA", "RGBA", "GRAY"])
def test_formats(fmt):
    image = scene(200, 400, "right", fmt=fmt)
    assert smart_shift(image, fmt, config(size=96))[1] > 0
    if fmt == "GRAY":
        assert smart_shift(image[:, :, None], fmt, config(size=96))[1] > 0


def test_never_leaves_the_image():
    rng = np.random.default_rng(5)
    for trial in range(200):
        h, w = (int(x) for x in rng.integers(8, 700, 2))
        size = (int(rng.integers(4, 256)),) * 2 if trial % 3 else (int(rng.integers(4, 200)), int(rng.integers(4, 200)))
        cfg = PreprocessConfig(size=size, crop_pct=float(rng.uniform(0.5, 1.0)), crop="smart")
        kind = trial % 4
        if kind == 0:
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            image = scene(max(h, 12), max(w, 12), ("left", "right", "top")[kind - 1], seed=trial)
        shift = smart_shift(image, "BGR", cfg)
        g, top, left = window(image.shape[0], image.shape[1], cfg, shift)
        assert 0 <= top <= g.resized_h - g.out_h and 0 <= left <= g.resized_w - g.out_w, (trial, shift, g)


@pytest.mark.aarch64
def test_best_window_and_profile():
    profile = np.array([0, 0, 0, 5, 5, 0, 0, 0], np.float64)
    assert best_window(profile, 2, center=3) == 3
    assert best_window(profile, 2, center=1) == 3
    assert best_window(np.ones(8), 3, center=2) == 2            # flat: stay
    assert best_window(profile, 20, center=0) == 0
    thumb = np.zeros((4, 6), np.float32)
    thumb[:, 4:] = 10
    assert edge_profile(thumb, axis=1).argmax() == 3           # the step sits between columns 3 and 4
    assert edge_profile(thumb, axis=0).tolist() == [10, 10, 10, 10]


def test_preprocessor_crops_where_the_shift_says(oracles):
    # The smart output equals the reference resize with the window moved by smart_shift.
    image_bgr = scene(150, 300, "right", seed=3)
    rgb = image_bgr[:, :, ::-1]
    pre = Preprocessor(size=64, input_format="RGB", layout="NHWC", dtype="uint8", crop="smart")
    shift = smart_shift(rgb, "RGB", pre.config)
    assert shift[1] > 0
    out = pre(rgb)[0]
    g = geometry.plan_resize_crop(150, 300, (64, 64), 0.875, shift)
    ref = oracles.resize(np.ascontiguousarray(rgb), "pil-bilinear", g.resized_h, g.resized_w)
    ref = ref[g.top:g.top + 64, g.left:g.left + 64]
    worst, _ = oracles.diff(out, ref)
    assert worst <= 1
    center = Preprocessor(size=64, input_format="RGB", layout="NHWC", dtype="uint8")(rgb)[0]
    assert not np.array_equal(out, center)
