"""Preprocessor against reference pipelines (Pillow, OpenCV) with stated tolerances.

Every comparison runs the reference the obvious way: resize the whole image with the library, then
slice torchvision's center crop. Tolerances are in uint8 levels (see ``MODE_SPECS`` in conftest):
antialiased bilinear/bicubic vs Pillow <= 1 level and mean <= 0.35, non-antialiased vs OpenCV
<= 1 level, nearest exact, area vs OpenCV ``INTER_AREA`` <= 1 level.

The production path (what the Classifier feeds the bundled model: BGR uint8 -> float32 NCHW with
the card's TF-style mean/std) is compared with Pillow normalized in float64: <= 1 level on the
normalized scale, on synthetic images, at every card scale and on real photos when ../shared is
there. Run with ``--parity`` to print the measured table.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

# (interpolation, antialias); tolerances per mode come from the ``oracles`` fixture.
ALL_MODES = [(i, aa) for i in ("bilinear", "bicubic", "nearest", "area") for aa in (True, False)]


def mode_id(mode) -> str:
    return f"{mode[0]}-{'aa' if mode[1] else 'noaa'}"


# Synthetic images: downscale (500x375-like, camera-like), odd shapes, upscale (smaller than S).
SYNTH_CASES = [
    "gradient-375x500",
    "checker1-375x500",
    "stripes-500x375",
    "noise-333x517",
    "blobs-480x640",
    "mixed-375x500",
    "checker1-257x257",   # S = 256: a very slight downscale
    "noise-1x1",
    "noise-3x1000",
    "noise-1000x3",
    "checker3-100x80",    # upscale
    "blobs-150x201",      # upscale
    "mixed-173x231",      # upscale, odd sizes
]
BIG_CASE = "mixed-3000x4000"   # one camera-sized frame (Pillow takes ~0.1 s per resize)
# (size, crop_pct) besides the default (224, 0.875); (h, w) sizes use the covering rule.
GEOMETRIES = [(256, 1.0), ((160, 288), 0.8), ((288, 160), 0.875), (97, 0.6), (224, 0.51)]
GEOMETRY_CASES = ["mixed-375x500", "noise-500x375", "blobs-90x70"]


def _compare(pre, rgb, size, crop_pct, mode, case, oracles, parity, input_format="RGB"):
    """Run one case against its oracle, log the measured difference, return the problem or ''."""
    oracle_name, max_tol, mean_tol = oracles.MODE_SPECS[mode]
    image = rgb if input_format == "RGB" else np.ascontiguousarray(rgb[..., ::-1])
    got = pre(image)[0]
    want = oracles.crop(rgb, size, crop_pct, oracle_name)
    assert got.shape == want.shape
    max_diff, mean_diff = oracles.diff(got, want)
    parity.record(mode_id(mode), oracle_name, case, max_diff, mean_diff)
    if max_diff > max_tol:
        where = np.argwhere(np.abs(got.astype(int) - want).max(axis=-1) > max_tol)
        return (f"{case} {mode_id(mode)} vs {oracle_name}: max diff {max_diff} > {max_tol} "
                f"at {len(where)} pixels, first (y, x) {where[:3].tolist()}")
    if mean_tol is not None and mean_diff > mean_tol:
        return f"{case} {mode_id(mode)} vs {oracle_name}: mean diff {mean_diff:.4f} > {mean_tol}"
    return ""


def _check(*args, **kw):
    problem = _compare(*args, **kw)
    assert not problem, problem


def _check_all(problems):
    problems = [p for p in problems if p]
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
@pytest.mark.parametrize("case", SYNTH_CASES)
def test_synthetic_matches_oracle(case, mode, make_pre, images, oracles, parity):
    interpolation, antialias = mode
    pre = make_pre(interpolation=interpolation, antialias=antialias)
    _check(pre, images.case(case), 224, 0.875, mode, case, oracles, parity)


@pytest.mark.aarch64
@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
@pytest.mark.parametrize("case", ["noise-20x15", "checker1-9x31", "gradient-5x4", "noise-1x1"])
def test_tiny_matches_oracle(case, mode, make_pre, images, oracles, parity):
    interpolation, antialias = mode
    pre = make_pre(size=8, interpolation=interpolation, antialias=antialias)
    _check(pre, images.case(case), 8, 0.875, mode, case, oracles, parity)


@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
def test_camera_frame_matches_oracle(mode, make_pre, images, oracles, parity):
    interpolation, antialias = mode
    pre = make_pre(interpolation=interpolation, antialias=antialias)
    _check(pre, images.case(BIG_CASE), 224, 0.875, mode, BIG_CASE, oracles, parity)


def _geometry_id(geometry) -> str:
    size, crop_pct = geometry
    return f"{size if isinstance(size, int) else '%dx%d' % size}@{crop_pct}"


@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_geometry_id)
def test_geometries_match_oracle(geometry, mode, make_pre, images, oracles, parity):
    size, crop_pct = geometry
    interpolation, antialias = mode
    pre = make_pre(size=size, crop_pct=crop_pct, interpolation=interpolation, antialias=antialias)
    _check_all([_compare(pre, images.case(case), size, crop_pct, mode, f"{case}@{_geometry_id(geometry)}",
                         oracles, parity) for case in GEOMETRY_CASES])


@pytest.mark.parametrize("mode", [("bilinear", True), ("bicubic", True), ("bilinear", False),
                                  ("bicubic", False), ("nearest", True), ("area", True)], ids=mode_id)
@pytest.mark.parametrize("size", [224, 288])
def test_photos_match_oracle(size, mode, shared_photos, make_pre, oracles, parity):
    interpolation, antialias = mode
    pre = make_pre(size=size, interpolation=interpolation, antialias=antialias, input_format="BGR")
    _check_all([_compare(pre, np.ascontiguousarray(bgr[..., ::-1]), size, 0.875, mode, f"photo:{name}@{size}",
                         oracles, parity, input_format="BGR") for name, bgr in shared_photos])


@pytest.mark.parametrize("case", SYNTH_CASES + ["noise-20x15", "checker1-9x31"])
def test_nearest_oracles_agree(case, images, oracles):
    # The two nearest references must agree for the test above to mean both; report if they do not.
    rgb = images.case(case)
    rh, rw, *_ = oracles.geometry(rgb.shape[0], rgb.shape[1], 224, 0.875)
    pil = oracles.resize(rgb, "pil-nearest", rh, rw)
    ocv = oracles.resize(rgb, "cv2-nearest-exact", rh, rw)
    np.testing.assert_array_equal(pil, ocv)


@pytest.mark.parametrize("case", ["mixed-375x500", "noise-3x1000", "checker3-100x80"])
def test_nearest_equals_opencv_nearest_exact(case, make_pre, images, oracles, parity):
    rgb = images.case(case)
    got = make_pre(interpolation="nearest")(rgb)[0]
    want = oracles.crop(rgb, 224, 0.875, "cv2-nearest-exact")
    parity.record("nearest", "cv2-nearest-exact", case, *oracles.diff(got, want))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", ["gradient-375x500", "noise-375x500", "blobs-500x375", "noise-9x7"])
def test_geometry_matches_torchvision_rule(case, make_pre, images, oracles):
    # Checked on pixels: with nearest, any geometry error (resized size or crop offset) shows up
    # as a mismatch against the oracle's crop of the whole resized image.
    rgb = images.case(case)
    for size, crop_pct in [(224, 0.875), (223, 0.875), (225, 0.9), ((100, 61), 0.7), ((61, 100), 0.95)]:
        got = make_pre(size=size, crop_pct=crop_pct, interpolation="nearest")(rgb)[0]
        want = oracles.crop(rgb, size, crop_pct, "pil-nearest")
        np.testing.assert_array_equal(got, want, err_msg=f"{case} size={size} crop_pct={crop_pct}")


# ------------------------------------------------------------------------------ float output
@pytest.mark.parametrize("mode", ALL_MODES, ids=mode_id)
@pytest.mark.parametrize("case", ["mixed-375x500", "noise-40x30", "checker1-301x257"])
def test_float32_is_normalized_uint8(case, mode, make_pre, images, norm):
    interpolation, antialias = mode
    rgb = images.case(case)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    kw = dict(interpolation=interpolation, antialias=antialias, mean=mean, std=std)
    u8 = make_pre(**kw)(rgb)[0]
    f_nchw = make_pre(dtype="float32", layout="NCHW", **kw)(rgb)
    f_nhwc = make_pre(dtype="float32", layout="NHWC", **kw)(rgb)
    assert f_nchw.dtype == np.float32 and f_nchw.shape == (1, 3, 224, 224)
    assert f_nhwc.dtype == np.float32 and f_nhwc.shape == (1, 224, 224, 3)
    np.testing.assert_array_equal(f_nchw[0].transpose(1, 2, 0), f_nhwc[0])
    err = np.abs(f_nhwc[0].astype(np.float64) - norm.normalized(u8, mean, std))
    tol = norm.tolerance(std)
    worst = (err / tol).max()
    assert worst <= 1.0, (f"float32 output is {worst * 1.0:.2f}x the 1-level tolerance away from the "
                          f"normalized uint8 output (max error per channel {err.reshape(-1, 3).max(0)})")


@pytest.mark.parametrize("mode", [("bilinear", True), ("bicubic", True), ("area", True)], ids=mode_id)
def test_float16_is_float32_rounded(mode, make_pre, images, float16_supported):
    if not float16_supported:
        pytest.skip("dtype='float16' not supported")
    interpolation, antialias = mode
    rgb = images.case("mixed-375x500")
    kw = dict(interpolation=interpolation, antialias=antialias, layout="NCHW")
    f16 = make_pre(dtype="float16", **kw)(rgb)
    f32 = make_pre(dtype="float32", **kw)(rgb)
    assert f16.dtype == np.float16 and f16.shape == f32.shape
    # float16 has an 11-bit significand: half an ulp of |x| plus the float32 path's own slack.
    np.testing.assert_allclose(f16.astype(np.float32), f32, rtol=2.0 ** -10, atol=1e-3)


@pytest.mark.aarch64
def test_float_mean_std_single_value(make_pre, images, norm):
    rgb = images.case("noise-20x15")
    u8 = make_pre(size=8)(rgb)[0]
    got = make_pre(size=8, dtype="float32", mean=0.5, std=0.25)(rgb)[0]
    err = np.abs(got - norm.normalized(u8, (0.5,) * 3, (0.25,) * 3))
    assert (err <= norm.tolerance((0.25,) * 3)).all()


# ------------------------------------------------------------------------------ input formats
def _as_format(rgb: np.ndarray, fmt: str, rng) -> np.ndarray:
    """``rgb`` converted to ``fmt`` with OpenCV (random alpha, which must be ignored)."""
    code = {"RGB": None, "BGR": cv2.COLOR_RGB2BGR, "RGBA": cv2.COLOR_RGB2RGBA, "BGRA": cv2.COLOR_RGB2BGRA,
            "GRAY": cv2.COLOR_RGB2GRAY}[fmt]
    out = rgb.copy() if code is None else cv2.cvtColor(rgb, code)
    if fmt in ("RGBA", "BGRA"):
        out[..., 3] = rng.integers(0, 256, out.shape[:2], dtype=np.uint8)
    return out


def _to_rgb(image: np.ndarray, fmt: str) -> np.ndarray:
    code = {"RGB": None, "BGR": cv2.COLOR_BGR2RGB, "RGBA": cv2.COLOR_RGBA2RGB, "BGRA": cv2.COLOR_BGRA2RGB,
            "GRAY": cv2.COLOR_GRAY2RGB}[fmt]
    return image.copy() if code is None else cv2.cvtColor(image, code)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("fmt", ["RGB", "BGR", "RGBA", "BGRA", "GRAY"])
@pytest.mark.parametrize("case", ["mixed-375x500", "noise-37x53"])
def test_input_format_equals_cvtcolor_first(case, fmt, dtype, make_pre, images):
    rng = np.random.default_rng(7)
    image = _as_format(images.case(case), fmt, rng)
    kw = dict(dtype=dtype, layout="NCHW", interpolation="bilinear")
    got = make_pre(input_format=fmt, **kw)(image)
    want = make_pre(input_format="RGB", **kw)(_to_rgb(image, fmt))
    np.testing.assert_array_equal(got, want)
    # The per-call override gives the same as a Preprocessor configured for the format.
    np.testing.assert_array_equal(make_pre(input_format="RGB", **kw)(image, input_format=fmt), got)


@pytest.mark.aarch64
@pytest.mark.parametrize("fmt", ["BGR", "RGBA", "BGRA", "GRAY"])
def test_input_format_tiny(fmt, make_pre, images):
    rng = np.random.default_rng(3)
    image = _as_format(images.case("noise-20x15"), fmt, rng)
    got = make_pre(size=8, input_format=fmt, interpolation="bicubic")(image)
    want = make_pre(size=8, input_format="RGB", interpolation="bicubic")(_to_rgb(image, fmt))
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------ production path
# What ``Classifier.predict`` feeds the bundled model: BGR uint8 in, float32 NCHW out, normalized
# with the card's TF-style mean/std, written into the classifier's reused buffer. The reference is
# Pillow (resize the whole RGB image, torchvision's center crop) normalized in float64 with the
# constants below, written here rather than read from the card, so a wrong card, a wrong resolver
# or a channel swap anywhere on the way fails. Tolerance: 1 uint8 level on the normalized scale
# (1 / (255 * std)), and a mean error of at most PRODUCTION_MEAN_LEVELS levels.
CARD_MEAN = (127 / 255,) * 3
CARD_STD = (128 / 255,) * 3
CARD_CROP_PCT = 0.875
PRODUCTION_MEAN_LEVELS = 0.35
CARD_SCALES = [192, 224, 256, 288]
# The card's mode (antialiased bilinear) and the ones a card or an argument may choose instead.
# Antialiased bilinear may be 1 level off: Pillow rounds its first pass to uint8 (up to 0.5) and
# then its output (0.5); the kernels round neither. The bicubic kernel follows Pillow's passes.
PRODUCTION_MODES = {("bilinear", True): "pil-bilinear", ("bicubic", True): "pil-bicubic",
                    ("bilinear", False): "cv2-linear", ("bicubic", False): "cv2-cubic"}
PRODUCTION_PARAMS = [pytest.param(mode, id=mode_id(mode)) for mode in PRODUCTION_MODES]


@pytest.fixture(scope="module")
def production(bundled_model):
    """``production(mode, size)``: the Preprocessor the bundled Classifier runs at ``size``, with
    ``mode`` = (interpolation, antialias) replacing the card's when it differs."""
    from fixres_edge import Classifier

    clf = Classifier(bundled_model, threads=1)

    def make(mode, size: int):
        pre = clf.preprocessor(size)
        interpolation, antialias = mode
        if (interpolation, antialias) != (clf.settings.interpolation, clf.settings.antialias):
            pre = pre.replace(interpolation=interpolation, antialias=antialias)
        return pre

    return make


def _production_problem(pre, bgr, size, oracle_name, case, oracles, norm, parity) -> str:
    """Run ``pre`` on a BGR image the way the Classifier does; the problem vs the oracle, or ''."""
    out = np.full(pre.out_shape(1), np.nan, np.float32)  # NaN left anywhere = a pixel never written
    got = pre(bgr, out=out)
    assert got is out and got.dtype == np.float32
    want_u8 = oracles.crop(np.ascontiguousarray(bgr[..., ::-1]), size, CARD_CROP_PCT, oracle_name)
    want = norm.normalized(want_u8, CARD_MEAN, CARD_STD).transpose(2, 0, 1)
    assert got.shape == (1, *want.shape), (got.shape, want.shape)
    if np.isnan(got).any():
        return f"{case}: {int(np.isnan(got[0]).any(axis=0).sum())} output pixels never written"
    err = np.abs(got[0].astype(np.float64) - want)
    tolerance = norm.tolerance(CARD_STD)[:, None, None]  # 1 level on the normalized scale, per channel
    levels = err * (255.0 * np.asarray(CARD_STD))[:, None, None]
    max_level, mean_level = float(levels.max()), float(levels.mean())
    mode = mode_id((pre.config.interpolation, pre.config.antialias))
    parity.record(f"{mode}-card-f32", oracle_name, case, round(max_level, 3), mean_level)
    if (err > tolerance).any():
        where = np.argwhere((err > tolerance).any(axis=0))
        return (f"{case} vs {oracle_name} + card normalization: {len(where)} pixels off by more than 1 level "
                f"(max {max_level:.3f} levels), first (y, x) {where[:3].tolist()}")
    if not mean_level <= PRODUCTION_MEAN_LEVELS:
        return f"{case} vs {oracle_name}: mean error {mean_level:.4f} levels > {PRODUCTION_MEAN_LEVELS}"
    return ""


def test_production_preprocessor_is_the_card_pipeline(production):
    # The configuration the comparisons below rely on: if this changes, they no longer test production.
    config = production(("bilinear", True), 224).config
    assert (config.input_format, config.layout, config.dtype) == ("BGR", "NCHW", "float32")
    assert (config.interpolation, config.antialias, config.crop_pct) == ("bilinear", True, CARD_CROP_PCT)
    np.testing.assert_allclose(config.mean, CARD_MEAN, rtol=0, atol=1e-12)
    np.testing.assert_allclose(config.std, CARD_STD, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", PRODUCTION_PARAMS)
@pytest.mark.parametrize("case", SYNTH_CASES + [BIG_CASE])
def test_production_synthetic_matches_oracle(case, mode, production, images, oracles, norm, parity):
    bgr = np.ascontiguousarray(images.case(case)[..., ::-1])
    problem = _production_problem(production(mode, 224), bgr, 224, PRODUCTION_MODES[mode], f"{case}@224",
                                  oracles, norm, parity)
    assert not problem, problem


@pytest.mark.parametrize("mode", PRODUCTION_PARAMS)
@pytest.mark.parametrize("size", CARD_SCALES)
def test_production_card_scales_match_oracle(size, mode, production, images, oracles, norm, parity):
    problems = []
    for case in ["mixed-375x500", "noise-333x517", "stripes-480x640"]:
        bgr = np.ascontiguousarray(images.case(case)[..., ::-1])
        problems.append(_production_problem(production(mode, size), bgr, size, PRODUCTION_MODES[mode],
                                            f"{case}@{size}", oracles, norm, parity))
    _check_all(problems)


@pytest.mark.shared
@pytest.mark.parametrize("mode", PRODUCTION_PARAMS)
@pytest.mark.parametrize("size", CARD_SCALES)
def test_production_photos_match_oracle(size, mode, shared_photos, production, oracles, norm, parity):
    # Real photos (decoded once by OpenCV; both sides see the same pixels, so decoders do not differ).
    _check_all([_production_problem(production(mode, size), bgr, size, PRODUCTION_MODES[mode],
                                    f"photo:{name}@{size}", oracles, norm, parity)
                for name, bgr in shared_photos])


def test_production_bicubic_noaa_is_clamped(production, images, oracles, norm, parity):
    problems = []
    for case in ["noise-375x500", "mixed-375x500", "noise-20x15"]:
        bgr = np.ascontiguousarray(images.case(case)[..., ::-1])
        problems.append(_production_problem(production(("bicubic", False), 224), bgr, 224, "cv2-cubic",
                                            f"{case}@224", oracles, norm, parity))
    _check_all(problems)


# Each is a plausible production bug; the comparison above must report every one of them.
WRONG_PIPELINES = {
    "red and blue swapped": dict(input_format="RGB"),
    "ImageNet mean/std": dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "mean off by 1 level": dict(mean=(128 / 255,) * 3),
    "crop_pct 0.9": dict(crop_pct=0.9),
    "no antialias": dict(antialias=False),
    "bicubic instead of bilinear": dict(interpolation="bicubic"),
}


@pytest.mark.parametrize("wrong", list(WRONG_PIPELINES))
def test_production_comparison_can_fail(wrong, production, images, oracles, norm, parity):
    bgr = np.ascontiguousarray(images.case("mixed-375x500")[..., ::-1])
    pre = production(("bilinear", True), 224)
    assert not _production_problem(pre, bgr, 224, "pil-bilinear", "control", oracles, norm, parity)
    broken = pre.replace(**WRONG_PIPELINES[wrong])
    assert _production_problem(broken, bgr, 224, "pil-bilinear", wrong, oracles, norm, parity), \
        f"the production oracle did not notice: {wrong}"
