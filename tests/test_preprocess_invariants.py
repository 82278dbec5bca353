"""Invariants of the Preprocessor that need no reference library.

A constant image stays constant; the fused resize+crop equals the project's own full resize followed
by slicing; a geometry that needs no resampling copies pixels exactly; batches equal single calls;
``out=`` is written in place; strided views equal their contiguous copies; thread counts do not
change results nor the global thread setting.
"""
from __future__ import annotations

import numpy as np
import pytest

MODES = [(i, aa) for i in ("bilinear", "bicubic", "nearest", "area") for aa in (True, False)]
DTYPES = ["uint8", "float32", "float16"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def mode_id(mode) -> str:
    return f"{mode[0]}-{'aa' if mode[1] else 'noaa'}"


def _skip_unsupported(dtype, float16_supported):
    if dtype == "float16" and not float16_supported:
        pytest.skip("dtype='float16' not supported")


def _expected_constant(value: int, dtype: str) -> np.ndarray:
    """The per-channel output value (RGB order) for a constant RGB image of ``value``."""
    if dtype == "uint8":
        return np.full(3, value, np.float64)
    return (value / 255.0 - np.asarray(MEAN)) / np.asarray(STD)


# ------------------------------------------------------------------------------ constant stays constant
@pytest.mark.aarch64
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_constant_stays_constant_tiny(mode, dtype, make_pre, float16_supported):
    _skip_unsupported(dtype, float16_supported)
    interpolation, antialias = mode
    for layout in ("NCHW", "NHWC"):
        pre = make_pre(size=8, interpolation=interpolation, antialias=antialias, dtype=dtype, layout=layout,
                       mean=MEAN, std=STD)
        for shape in [(1, 1), (20, 15), (5, 3), (3, 40), (8, 9)]:
            for value in (0, 1, 128, 254, 255):
                rgb = np.empty(shape + (3,), np.uint8)
                rgb[...] = (value, value, value)
                _assert_constant(pre(rgb), value, dtype, layout, f"{shape} value {value}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_constant_stays_constant(mode, dtype, make_pre, float16_supported):
    _skip_unsupported(dtype, float16_supported)
    interpolation, antialias = mode
    pre = make_pre(interpolation=interpolation, antialias=antialias, dtype=dtype, layout="NCHW",
                   mean=MEAN, std=STD)
    for shape in [(375, 500), (1000, 3), (100, 80), (256, 341), (1201, 1599)]:
        for color in [(0, 0, 0), (255, 255, 255), (13, 200, 77)]:
            rgb = np.empty(shape + (3,), np.uint8)
            rgb[...] = color
            _assert_constant_color(pre(rgb), color, dtype, "NCHW", f"{shape} color {color}")


def _assert_constant(out, value, dtype, layout, what):
    _assert_constant_color(out, (value,) * 3, dtype, layout, what)


def _assert_constant_color(out, color, dtype, layout, what):
    planes = out[0] if layout == "NCHW" else np.moveaxis(out[0], -1, 0)
    for c in range(3):
        want = _expected_constant(color[c], dtype)[c]
        plane = planes[c].astype(np.float64)
        if dtype == "uint8":
            assert (plane == want).all(), f"{what}: channel {c} has values {np.unique(plane)[:5]}, want {want}"
        else:
            tol = 1e-5 if dtype == "float32" else 2.0 ** -10 * abs(want) + 1e-4
            assert np.abs(plane - want).max() <= tol, f"{what}: channel {c} off by {np.abs(plane - want).max()}"


# ------------------------------------------------------------------------------ fused == resize then crop
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("mode", MODES, ids=mode_id)
@pytest.mark.parametrize("case,size,crop_pct", [
    ("mixed-375x500", 224, 0.875),
    ("noise-500x375", 224, 0.875),
    ("checker1-301x257", (160, 288), 0.8),
    ("blobs-100x80", 224, 0.875),     # upscale
    ("noise-31x67", 17, 0.6),         # upscale, odd
])
def test_fused_equals_resize_then_crop(case, size, crop_pct, mode, dtype, make_pre, images, oracles):
    rgb = images.case(case)
    interpolation, antialias = mode
    kw = dict(interpolation=interpolation, antialias=antialias, dtype=dtype, layout="NHWC")
    rh, rw, top, left, oh, ow = oracles.geometry(rgb.shape[0], rgb.shape[1], size, crop_pct)
    full = make_pre(size=(rh, rw), crop_pct=1.0, **kw)(rgb)[0]
    fused = make_pre(size=size, crop_pct=crop_pct, **kw)(rgb)[0]
    np.testing.assert_array_equal(fused, full[top:top + oh, left:left + ow])


# ------------------------------------------------------------------------------ identity is exact
@pytest.mark.parametrize("mode", MODES, ids=mode_id)
@pytest.mark.parametrize("case,size,crop_pct,window", [
    # short side already S = int(224 / 0.875) = 256: no resampling; offsets 16 and round(58.5) = 58.
    ("noise-256x341", 224, 0.875, (16, 58)),
    ("noise-341x256", 224, 0.875, (58, 16)),
    ("checker1-256x256", 224, 0.875, (16, 16)),
    # (h, w) size: target (256, 182); the y axis needs the larger scale (1.0), x stays 400 wide.
    ("noise-256x400", (224, 160), 0.875, (16, 120)),
    # crop_pct = 1 and size = image size: the whole image.
    ("stripes-57x91", (57, 91), 1.0, (0, 0)),
])
def test_no_resampling_is_exact(case, size, crop_pct, window, mode, make_pre, images, norm):
    rgb = images.case(case)
    oh, ow = (size, size) if isinstance(size, int) else size
    top, left = window
    want = rgb[top:top + oh, left:left + ow]
    interpolation, antialias = mode
    kw = dict(size=size, crop_pct=crop_pct, interpolation=interpolation, antialias=antialias)
    np.testing.assert_array_equal(make_pre(**kw)(rgb)[0], want)
    got = make_pre(dtype="float32", mean=MEAN, std=STD, **kw)(rgb)[0]
    np.testing.assert_allclose(got, norm.normalized(want, MEAN, STD), rtol=0, atol=1e-5)


@pytest.mark.aarch64
@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_no_resampling_is_exact_tiny(mode, make_pre, images):
    rgb = images.case("noise-9x13")  # size 8, crop_pct 1: short side 9 -> int(8 / 0.875) = 9
    interpolation, antialias = mode
    got = make_pre(size=8, crop_pct=0.875, interpolation=interpolation, antialias=antialias)(rgb)[0]
    np.testing.assert_array_equal(got, rgb[0:8, 2:10])  # left = round((13 - 8) / 2) = round(2.5) = 2


# ------------------------------------------------------------------------------ batch, out=
@pytest.mark.parametrize("layout,dtype", [("NCHW", "float32"), ("NHWC", "uint8")])
def test_batch_equals_single_calls(layout, dtype, make_pre, images):
    batch = [images.case(c) for c in ("mixed-375x500", "noise-100x80", "noise-1x1", "blobs-480x640", "gradient-3x1000")]
    pre = make_pre(layout=layout, dtype=dtype)
    got = pre.batch(batch)
    assert got.shape == pre.out_shape(len(batch)) and got.dtype == np.dtype(dtype)
    for i, image in enumerate(batch):
        np.testing.assert_array_equal(got[i], pre(image)[0], err_msg=f"batch item {i}")
    out = np.full(pre.out_shape(len(batch)), 7, dtype)
    assert pre.batch(batch, out=out) is out
    np.testing.assert_array_equal(out, got)


@pytest.mark.aarch64
@pytest.mark.parametrize("layout,dtype", [("NCHW", "float32"), ("NHWC", "uint8"), ("NCHW", "uint8")])
def test_out_is_written_in_place(layout, dtype, make_pre, images):
    rgb = images.case("noise-20x15")
    pre = make_pre(size=8, layout=layout, dtype=dtype)
    want = pre(rgb)
    out = np.full(pre.out_shape(1), 3, dtype)
    got = pre(rgb, out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)
    # Reusing the buffer with another image overwrites every element.
    pre(images.case("gradient-9x11"), out=out)
    np.testing.assert_array_equal(out, pre(images.case("gradient-9x11")))


@pytest.mark.aarch64
def test_out_shape_and_config(make_pre):
    pre = make_pre(size=(160, 288), crop_pct=0.8, layout="NCHW")
    assert pre.config.size == (160, 288)
    assert pre.out_shape() == (1, 3, 160, 288)
    assert pre.out_shape(5) == (5, 3, 160, 288)
    assert pre.min_short_side == int(160 / 0.8)
    nhwc = pre.replace(layout="NHWC")
    assert nhwc.out_shape(2) == (2, 160, 288, 3)
    assert pre.config.layout == "NCHW" and nhwc.config.layout == "NHWC"
    assert make_pre(size=224).config.size == (224, 224)
    assert make_pre(size=224, crop_pct=0.875).min_short_side == 256


# ------------------------------------------------------------------------------ strided views
def _views(base: np.ndarray):
    """(name, view) pairs of ``base`` (H x W x C or H x W) with unusual strides."""
    yield "crop of a bigger array", _embedded(base)
    yield "padded rows (camera buffer)", _padded(base)
    if base.ndim == 3:
        yield "channel-reversed", base[..., ::-1]
    yield "vertically flipped", base[::-1]
    yield "horizontally flipped", base[:, ::-1]
    yield "every other column", base[:, ::2]
    yield "every other row and column", base[::2, ::2]
    yield "transposed", base.swapaxes(0, 1)
    yield "read-only", _read_only(base)


def _embedded(base):
    h, w = base.shape[:2]
    big = np.zeros((h + 10, w + 14) + base.shape[2:], np.uint8)
    big[4:4 + h, 7:7 + w] = base
    return big[4:4 + h, 7:7 + w]


def _padded(base):
    # Rows of a camera buffer: stride rounded up to 64 bytes plus 32 spare bytes, read in place.
    h, w = base.shape[:2]
    c = base.shape[2] if base.ndim == 3 else 1
    stride = (w * c + 63) // 64 * 64 + 32
    buffer = np.zeros(h * stride, np.uint8)
    view = np.lib.stride_tricks.as_strided(buffer, shape=base.shape,
                                           strides=(stride, c, 1) if base.ndim == 3 else (stride, 1))
    view[...] = base
    return view


def _read_only(base):
    view = base.copy()
    view.setflags(write=False)
    return view


# Views whose pixels are still packed (channel stride 1, pixel stride = channels) take the same
# kernel path as a contiguous image and must give bit-identical results. Other views go through
# the generic strided path, which sums the vertical taps in another order: float32 results may
# differ in the last bit (measured <= 1.2e-6 on values of magnitude <= 2.7), and a uint8 value
# sitting on a .5 boundary may round the other way (1 level, a handful of pixels).
PACKED_VIEWS = {"crop of a bigger array", "padded rows (camera buffer)", "vertically flipped", "read-only"}
FLOAT_SLACK = 2e-6


def _assert_same(got, want, name, dtype):
    if name in PACKED_VIEWS:
        np.testing.assert_array_equal(got, want, err_msg=name)
    elif dtype == "uint8":
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        assert diff.max() <= 1 and (diff != 0).mean() < 1e-3, f"{name}: {np.count_nonzero(diff)} values differ"
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT_SLACK, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("mode", [("bilinear", True), ("bicubic", False), ("nearest", True), ("area", True)],
                         ids=mode_id)
@pytest.mark.parametrize("fmt", ["RGB", "BGRA", "GRAY"])
def test_strided_views_equal_contiguous_copies(fmt, mode, dtype, make_pre, images):
    rgb = images.case("mixed-151x203")
    base = {"RGB": rgb, "BGRA": np.dstack([rgb[..., ::-1], rgb[..., :1]]), "GRAY": rgb[..., 1].copy()}[fmt]
    interpolation, antialias = mode
    pre = make_pre(size=64, interpolation=interpolation, antialias=antialias, input_format=fmt,
                   dtype=dtype, layout="NCHW")
    for name, view in _views(base):
        _assert_same(pre(view), pre(np.ascontiguousarray(view)), f"{fmt} view: {name}", dtype)


@pytest.mark.aarch64
def test_strided_views_tiny(make_pre, images):
    rgb = images.case("noise-20x15")
    pre = make_pre(size=8)
    for name, view in _views(rgb):
        _assert_same(pre(view), pre(np.ascontiguousarray(view)), name, "uint8")


# ------------------------------------------------------------------------------ threads
@pytest.mark.parametrize("mode", [("bilinear", True), ("bicubic", True), ("area", True), ("nearest", False)],
                         ids=mode_id)
@pytest.mark.parametrize("dtype,layout", [("float32", "NCHW"), ("uint8", "NHWC")])
def test_batch_threads_give_identical_results(dtype, layout, mode, make_pre, images):
    interpolation, antialias = mode
    kw = dict(interpolation=interpolation, antialias=antialias, dtype=dtype, layout=layout)
    batch = [images.case(case) for case in ("mixed-375x500", "noise-3x1000", "blobs-50x40", "mixed-95x130")]
    one = make_pre(threads=1, **kw).batch(batch)
    np.testing.assert_array_equal(make_pre(threads=2, **kw).batch(batch), one)
    np.testing.assert_array_equal(make_pre(threads=3, **kw).batch(batch), one)
    np.testing.assert_array_equal(make_pre(**kw).batch(batch), one)


def test_batch_threads_share_the_images(make_pre, images, monkeypatch):
    """threads=2 runs a batch on two threads (and threads=1 on the calling thread alone)."""
    import threading

    from fixres_edge.preprocess import Preprocessor

    batch = [images.case("mixed-375x500")] * 6
    seen: list[int] = []
    real = Preprocessor._run
    gate = threading.Barrier(2, timeout=30)

    def recording(self, image, out, input_format, width=None):
        seen.append(threading.get_ident())
        if self.config.threads == 2 and len(seen) <= 2:
            gate.wait()  # both shares must be running at once, or this times out
        return real(self, image, out, input_format, width)

    monkeypatch.setattr(Preprocessor, "_run", recording)
    make_pre(threads=2).batch(batch)
    assert len(set(seen)) == 2 and threading.get_ident() in seen
    seen.clear()
    make_pre(threads=1).batch(batch)
    assert set(seen) == {threading.get_ident()}


def test_concurrent_python_threads_agree(make_pre, images):
    # Kernels release the GIL and one Preprocessor may be shared between Python threads.
    from concurrent.futures import ThreadPoolExecutor

    frames = [images.case(c) for c in ("mixed-375x500", "noise-480x640", "blobs-300x200", "noise-3x1000")]
    pre_serial = make_pre(threads=1, dtype="float32", layout="NCHW")
    pre_parallel = make_pre(threads=2, dtype="float32", layout="NCHW")
    want = [pre_serial(f).copy() for f in frames]
    jobs = [(pre, i) for i in range(len(frames)) for pre in (pre_serial, pre_parallel)] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: (job[1], job[0](frames[job[1]])), jobs))
    for i, got in results:
        np.testing.assert_array_equal(got, want[i], err_msg=f"frame {i}")


# ------------------------------------------------------------------------------ paired fast path
@pytest.mark.aarch64
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case,size,antialias", [
    ("mixed-375x500", 224, True),      # 3 taps per axis (the common photo case)
    ("noise-480x640", 224, True),      # 4 taps per axis
    ("mixed-375x500", 224, False),     # 2 taps (OpenCV's INTER_LINEAR filter)
    ("mixed-95x130", (57, 80), True),  # odd output height: the last row of a band goes alone
    ("mixed-95x130", (57, 78), True),  # width not a multiple of 4: the last 4 pixels overlap
    ("noise-12x9", (7, 6), True),      # 6 wide: two overlapping groups of 4
    ("noise-300x200", 96, True),       # 4 taps, portrait
    ("noise-151x203", 64, True),       # 5 taps: the generic loops
])
def test_bgr_paired_rows_equal_generic_path(case, size, antialias, threads, make_pre, images):
    """BGR float32 NCHW (paired rows, vector taps) equals the same pixels as RGB (the generic loops)."""
    rgb = images.case(case)
    kw = dict(size=size, antialias=antialias, layout="NCHW", dtype="float32", threads=threads)
    paired = make_pre(input_format="BGR", **kw)(np.ascontiguousarray(rgb[..., ::-1]))
    generic = make_pre(input_format="RGB", **kw)(rgb)
    # Only FMA contraction may differ between the two code paths (a few float32 ulps).
    np.testing.assert_allclose(paired, generic, rtol=0, atol=FLOAT_SLACK)
