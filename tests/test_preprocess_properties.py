"""Hypothesis property tests over shapes, strides, formats, layouts, dtypes, sizes and modes.

Examples are derandomized through the settings profile in conftest (``HYPOTHESIS_PROFILE=thorough``
runs more). Images are at most 300 x 300 so the Pillow/OpenCV references stay cheap.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st

FORMATS = ["RGB", "BGR", "RGBA", "BGRA", "GRAY"]
VIEWS = ["contiguous", "crop", "padded", "flip_v", "flip_h", "every_other_column", "channel_reversed"]
# Views that keep pixels packed take the contiguous kernel path and must be bit-identical; the
# others may differ by float32 rounding (see test_preprocess_invariants.py).
PACKED_VIEWS = {"contiguous", "crop", "padded", "flip_v"}
KINDS = ["noise", "gradient", "checker1", "blobs", "stripes", "mixed"]
INTERPOLATIONS = ["bilinear", "bicubic", "nearest", "area"]


def _in_format(rgb: np.ndarray, fmt: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """(image in ``fmt``, the RGB image the Preprocessor should see)."""
    if fmt == "RGB":
        return rgb, rgb
    if fmt == "BGR":
        return np.ascontiguousarray(rgb[..., ::-1]), rgb
    if fmt == "GRAY":
        gray = np.ascontiguousarray(rgb[..., 1])
        return gray, np.repeat(gray[..., None], 3, axis=2)
    alpha = rng.integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)
    color = rgb if fmt == "RGBA" else rgb[..., ::-1]
    return np.ascontiguousarray(np.concatenate([color, alpha], axis=2)), rgb


def _as_view(image: np.ndarray, view: str) -> np.ndarray:
    """An array equal to ``image`` whose memory layout is ``view``."""
    h, w = image.shape[:2]
    extra = image.shape[2:]
    if view == "contiguous":
        return image
    if view == "crop":
        big = np.zeros((h + 3, w + 5) + extra, np.uint8)
        big[2:2 + h, 1:1 + w] = image
        return big[2:2 + h, 1:1 + w]
    if view == "padded":
        row = int(np.prod(extra, dtype=np.int64)) * w
        stride = (row + 63) // 64 * 64 + 16
        buffer = np.zeros(h * stride, np.uint8)
        strides = (stride,) + image.strides[1:]
        out = np.lib.stride_tricks.as_strided(buffer, shape=image.shape, strides=strides)
        out[...] = image
        return out
    if view == "flip_v":
        return np.ascontiguousarray(image[::-1])[::-1]
    if view == "flip_h":
        return np.ascontiguousarray(image[:, ::-1])[:, ::-1]
    if view == "every_other_column":
        big = np.zeros((h, 2 * w) + extra, np.uint8)
        big[:, ::2] = image
        return big[:, ::2]
    if view == "channel_reversed":
        if image.ndim == 2:
            return image
        return np.ascontiguousarray(image[..., ::-1])[..., ::-1]
    raise ValueError(view)


@st.composite
def configs(draw, dtypes=("uint8", "float32", "float16")):
    h = draw(st.integers(1, 300))
    w = draw(st.integers(1, 300))
    size = draw(st.one_of(st.integers(1, 128), st.tuples(st.integers(1, 128), st.integers(1, 128))))
    return dict(
        h=h, w=w, kind=draw(st.sampled_from(KINDS)), seed=draw(st.integers(0, 2 ** 16)),
        fmt=draw(st.sampled_from(FORMATS)), view=draw(st.sampled_from(VIEWS)),
        pre=dict(size=size, crop_pct=draw(st.floats(0.5, 1.0, exclude_min=True, allow_nan=False)),
                 interpolation=draw(st.sampled_from(INTERPOLATIONS)), antialias=draw(st.booleans()),
                 layout=draw(st.sampled_from(["NCHW", "NHWC"])), dtype=draw(st.sampled_from(dtypes))),
    )


def _prepare(cfg, images):
    rng = np.random.default_rng(cfg["seed"])
    rgb = images.synthetic(cfg["kind"], cfg["h"], cfg["w"], cfg["seed"] % 7)
    image, seen_rgb = _in_format(rgb, cfg["fmt"], rng)
    view = _as_view(image, cfg["view"])
    np.testing.assert_array_equal(view, image)  # the view construction itself
    return image, view, seen_rgb


def _to_hwc(out: np.ndarray, layout: str) -> np.ndarray:
    return out[0] if layout == "NHWC" else out[0].transpose(1, 2, 0)


@given(cfg=configs())
def test_property_shape_dtype_finite_and_view_invariant(cfg, make_pre, images, float16_supported):
    note(repr(cfg))
    if cfg["pre"]["dtype"] == "float16" and not float16_supported:
        cfg["pre"]["dtype"] = "float32"
    image, view, _ = _prepare(cfg, images)
    pre = make_pre(input_format=cfg["fmt"], **cfg["pre"])
    out = pre(view)
    size = cfg["pre"]["size"]
    oh, ow = (size, size) if isinstance(size, int) else size
    want_shape = (1, 3, oh, ow) if cfg["pre"]["layout"] == "NCHW" else (1, oh, ow, 3)
    assert out.shape == want_shape == pre.out_shape(1)
    assert out.dtype == np.dtype(cfg["pre"]["dtype"])
    assert out.flags.c_contiguous
    assert np.isfinite(out.astype(np.float64)).all()
    contiguous = pre(image)
    if cfg["view"] in PACKED_VIEWS:
        np.testing.assert_array_equal(out, contiguous)
    elif out.dtype == np.uint8:
        assert np.abs(out.astype(np.int16) - contiguous).max() <= 1
    else:
        slack = 2e-6 if out.dtype == np.float32 else 2e-3
        np.testing.assert_allclose(out.astype(np.float32), contiguous.astype(np.float32), rtol=0, atol=slack)


@given(cfg=configs(dtypes=("uint8",)))
def test_property_uint8_matches_oracle(cfg, make_pre, images, oracles):
    note(repr(cfg))
    _, view, rgb = _prepare(cfg, images)
    p = cfg["pre"]
    pre = make_pre(input_format=cfg["fmt"], **p)
    got = _to_hwc(pre(view), p["layout"])
    oracle_name, max_tol, mean_tol = oracles.MODE_SPECS[(p["interpolation"], p["antialias"])]
    want = oracles.crop(rgb, p["size"], p["crop_pct"], oracle_name)
    max_diff, mean_diff = oracles.diff(got, want)
    assert max_diff <= max_tol, f"{oracle_name}: max diff {max_diff} > {max_tol}"
    # The mean bound is statistical: only meaningful with enough pixels.
    if mean_tol is not None and got.size >= 3 * 32 * 32:
        assert mean_diff <= mean_tol, f"{oracle_name}: mean diff {mean_diff:.3f} > {mean_tol}"


@given(cfg=configs(dtypes=("float32",)), mean=st.floats(0.0, 1.0), std=st.floats(0.05, 2.0))
def test_property_float_is_normalized_uint8(cfg, mean, std, make_pre, images, norm):
    note(repr(cfg))
    _, view, _ = _prepare(cfg, images)
    p = dict(cfg["pre"], mean=(mean, 0.5, 0.406), std=(std, 0.25, 0.225))
    got = _to_hwc(make_pre(input_format=cfg["fmt"], **p)(view), p["layout"]).astype(np.float64)
    u8 = _to_hwc(make_pre(input_format=cfg["fmt"], **dict(p, dtype="uint8"))(view), p["layout"])
    err = np.abs(got - norm.normalized(u8, p["mean"], p["std"]))
    assert (err <= norm.tolerance(p["std"])).all(), f"worst error per channel {err.reshape(-1, 3).max(0)}"
