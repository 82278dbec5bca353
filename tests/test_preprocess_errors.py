"""Bad input gives a one-line ValueError/TypeError that names the problem and the valid choices.

Never a Numba typing error, never a multi-line dump: every check happens in Python before a kernel
runs. Each case lists words the message must contain (a tuple means "any of these").
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.aarch64


def _check_message(excinfo, *must):
    msg = str(excinfo.value)
    assert msg.strip(), "empty error message"
    assert "\n" not in msg.strip(), f"multi-line message: {msg!r}"
    assert len(msg) <= 400, f"message too long ({len(msg)} chars): {msg!r}"
    low = msg.lower()
    for banned in ("numba", "typingerror", "no implementation of function", "lowering"):
        assert banned not in low, f"internal error leaked: {msg!r}"
    assert not type(excinfo.value).__module__.startswith("numba"), type(excinfo.value)
    for words in must:
        options = (words,) if isinstance(words, str) else words
        assert any(o.lower() in low for o in options), f"message {msg!r} should mention one of {options}"


@pytest.fixture(scope="module")
def pre():
    from fixres_edge import Preprocessor

    return Preprocessor(size=8, input_format="BGR")


def _image(shape=(20, 15, 3), dtype=np.uint8):
    return np.zeros(shape, dtype)


# ------------------------------------------------------------------------------ the image
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.uint16, np.int8, np.bool_])
def test_wrong_dtype(pre, dtype):
    with pytest.raises((TypeError, ValueError)) as e:
        pre(_image(dtype=dtype))
    _check_message(e, np.dtype(dtype).name, "uint8")


@pytest.mark.parametrize("fmt,shape", [
    ("BGR", (20, 15, 4)),
    ("RGB", (20, 15, 4)),
    ("BGR", (20, 15)),
    ("RGB", (20, 15, 1)),
    ("RGB", (20, 15, 2)),
    ("BGRA", (20, 15, 3)),
    ("RGBA", (20, 15)),
    ("GRAY", (20, 15, 3)),
    ("GRAY", (20, 15, 4)),
    ("BGR", (1, 20, 15, 3)),
    ("BGR", (60,)),
    ("GRAY", (60,)),
])
def test_wrong_channel_count_or_rank(pre, fmt, shape):
    with pytest.raises((ValueError, TypeError)) as e:
        pre(_image(shape), input_format=fmt)
    _check_message(e, fmt, (str(shape), "channel", "dimension", "ndim"))


@pytest.mark.parametrize("fmt,shape", [("BGR", (20, 15, 4)), ("GRAY", (20, 15, 3))])
def test_wrong_channel_count_configured_format(fmt, shape):
    from fixres_edge import Preprocessor

    with pytest.raises((ValueError, TypeError)) as e:
        Preprocessor(size=8, input_format=fmt)(_image(shape))
    _check_message(e, fmt, (str(shape), "channel"))


@pytest.mark.parametrize("fmt,shape", [
    ("BGR", (0, 15, 3)), ("BGR", (20, 0, 3)), ("RGBA", (0, 0, 4)), ("GRAY", (0, 15)), ("GRAY", (15, 0)),
])
def test_zero_size_image(pre, fmt, shape):
    with pytest.raises(ValueError) as e:
        pre(_image(shape), input_format=fmt)
    _check_message(e, ("empty", "zero", str(shape)))


@pytest.mark.parametrize("bad", [[[0, 0, 0]], None, "image.jpg", b"\xff\xd8", 3, (1, 2, 3)],
                         ids=["list", "None", "str", "bytes", "int", "tuple"])
def test_not_an_array(pre, bad):
    with pytest.raises(TypeError) as e:
        pre(bad)
    _check_message(e, ("array", "ndarray", "numpy"))


def test_unknown_per_call_input_format(pre):
    with pytest.raises(ValueError) as e:
        pre(_image(), input_format="XYZ")
    _check_message(e, "XYZ", "BGR", "RGB")


def test_bad_item_in_batch(pre):
    with pytest.raises((TypeError, ValueError)) as e:
        pre.batch([_image(), _image(dtype=np.float32)])
    _check_message(e, ("float32", "uint8"))


# ------------------------------------------------------------------------------ out=
def _bad_outs(pre):
    shape = pre.out_shape(1)
    big = np.zeros(shape[:-1] + (shape[-1] * 2,), np.float32)
    read_only = np.zeros(shape, np.float32)
    read_only.setflags(write=False)
    return [
        ("wrong shape", np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32), (str(shape), "shape")),
        ("missing batch axis", np.zeros(shape[1:], np.float32), (str(shape), "shape")),
        ("wrong dtype", np.zeros(shape, np.float64), ("float32", "dtype")),
        ("uint8 for float", np.zeros(shape, np.uint8), ("float32", "dtype")),
        ("non-contiguous", big[..., ::2], ("contiguous",)),
        ("fortran order", np.asfortranarray(np.zeros(shape, np.float32)), ("contiguous",)),
        ("read-only", read_only, ("writeable", "writable", "read-only", "readonly")),
    ]


@pytest.mark.parametrize("which", range(7), ids=["wrong shape", "missing batch axis", "wrong dtype",
                                                 "uint8 for float", "non-contiguous", "fortran order",
                                                 "read-only"])
def test_bad_out(pre, which):
    name, out, words = _bad_outs(pre)[which]
    with pytest.raises((ValueError, TypeError)) as e:
        pre(_image(), out=out)
    _check_message(e, "out", words)


def test_out_not_an_array(pre):
    with pytest.raises(TypeError) as e:
        pre(_image(), out=[0.0] * 192)
    _check_message(e, "out", ("array", "ndarray"))


def test_bad_batch_out(pre):
    with pytest.raises(ValueError) as e:
        pre.batch([_image(), _image()], out=np.zeros(pre.out_shape(3), np.float32))
    _check_message(e, "out", str(pre.out_shape(2)))


def test_out_untouched_on_error(pre):
    out = np.full(pre.out_shape(1), 5.0, np.float32)
    with pytest.raises((TypeError, ValueError)):
        pre(_image(dtype=np.float64), out=out)
    assert (out == 5.0).all()


# ------------------------------------------------------------------------------ constructor
CONSTRUCTOR_CASES = [
    # (keyword, bad value, words the message must mention)
    ("size", 0, ["size", ("positive", "> 0", ">= 1")]),
    ("size", -224, ["size", ("positive", "> 0", ">= 1")]),
    ("size", (224, 0), ["size", ("positive", "> 0", ">= 1")]),
    ("size", (0, 224), ["size", ("positive", "> 0", ">= 1")]),
    ("size", (224, 224, 3), ["size", ("pair", "(height, width)", "2")]),
    ("size", (224,), ["size", ("pair", "(height, width)", "2")]),
    ("size", "224", ["size", "int"]),
    ("size", 224.5, ["size", "int"]),
    ("size", None, ["size", "int"]),
    ("crop_pct", 0, ["crop_pct", ("(0, 1]", "0 and 1", "(0,1]")]),
    ("crop_pct", 0.0, ["crop_pct", ("(0, 1]", "0 and 1", "(0,1]")]),
    ("crop_pct", -0.5, ["crop_pct", ("(0, 1]", "0 and 1", "(0,1]")]),
    ("crop_pct", 1.01, ["crop_pct", ("(0, 1]", "0 and 1", "(0,1]")]),
    ("crop_pct", float("nan"), ["crop_pct", ("(0, 1]", "0 and 1", "(0,1]")]),
    ("crop_pct", float("inf"), ["crop_pct", ("(0, 1]", "0 and 1", "(0,1]")]),
    ("crop_pct", "0.875", ["crop_pct"]),
    ("interpolation", "lanczos", ["lanczos", "bilinear", "bicubic", "nearest", "area"]),
    ("interpolation", "", ["interpolation", "bilinear"]),
    ("interpolation", None, ["interpolation", "bilinear"]),
    ("layout", "CHW", ["CHW", "NCHW", "NHWC"]),
    ("layout", "NCWH", ["NCWH", "NCHW", "NHWC"]),
    ("input_format", "YUV", ["YUV", "BGR", "RGB", "GRAY"]),
    ("input_format", "HSV", ["HSV", "BGR"]),
    ("dtype", "float64", ["float64", "float32", "uint8"]),
    ("dtype", "int8", ["int8", "float32", "uint8"]),
    ("dtype", np.float64, ["float64", "float32", "uint8"]),
    ("mean", (0.5, 0.5), ["mean", "3"]),
    ("mean", (0.5, 0.5, 0.5, 0.5), ["mean", "3"]),
    ("mean", (), ["mean", "3"]),
    ("mean", "abc", ["mean"]),
    ("mean", (0.5, float("nan"), 0.5), ["mean", "finite"]),
    ("std", (0.2, 0.2), ["std", "3"]),
    ("std", 0, ["std", ("positive", "> 0", "nonzero", "non-zero", "zero")]),
    ("std", 0.0, ["std", ("positive", "> 0", "nonzero", "non-zero", "zero")]),
    ("std", (0.2, 0.0, 0.2), ["std", ("positive", "> 0", "nonzero", "non-zero", "zero")]),
    ("std", (0.2, -0.1, 0.2), ["std", ("positive", "> 0")]),
    ("threads", 0, ["threads", ("positive", ">= 1", "> 0", "None")]),
    ("threads", -1, ["threads", ("positive", ">= 1", "> 0", "None")]),
    ("threads", 1.5, ["threads", ("int", "positive")]),
    ("crop", "left", ["left", "center"]),
    ("antialias", "yes", ["antialias", ("True", "bool")]),
]


def _case_id(case):
    key, value, _ = case
    return f"{key}={value!r}"


@pytest.mark.parametrize("case", CONSTRUCTOR_CASES, ids=[_case_id(c) for c in CONSTRUCTOR_CASES])
def test_bad_constructor_argument(case):
    from fixres_edge import Preprocessor

    key, value, words = case
    with pytest.raises((ValueError, TypeError)) as e:
        Preprocessor(**{key: value})
    _check_message(e, *words)


@pytest.mark.parametrize("case", CONSTRUCTOR_CASES[:: 4], ids=[_case_id(c) for c in CONSTRUCTOR_CASES[:: 4]])
def test_bad_replace_argument(pre, case):
    key, value, words = case
    with pytest.raises((ValueError, TypeError)) as e:
        pre.replace(**{key: value})
    _check_message(e, *words)


def test_replace_unknown_field(pre):
    with pytest.raises(TypeError) as e:
        pre.replace(sizes=3)
    _check_message(e, "sizes")


@pytest.mark.parametrize("key,value", [("interpolation", "BILINEAR"), ("layout", "nhwc"), ("input_format", "rgb")])
def test_case_insensitive_names_are_accepted(key, value):
    # Not an error: names are normalized (documented leniency); the config stores the canonical form.
    from fixres_edge import Preprocessor

    config = Preprocessor(**{key: value}).config
    assert getattr(config, key) in ("bilinear", "NHWC", "RGB")
