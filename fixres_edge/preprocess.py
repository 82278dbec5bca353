"""``Preprocessor``: validate an image, plan its geometry (cached), run the fused kernel.

Everything that decides (validation, geometry, tables, channel order, normalization constants)
happens here in Python and is cached per input shape; the kernels only loop.
"""
from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from numbers import Integral, Real
from typing import Sequence

import numpy as np

from fixres_edge import geometry
from fixres_edge.kernels import launch
from fixres_edge.tables import INTERPOLATIONS, AxisTable, axis_table

from fixres_edge.constants import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "uint8", "float16")
CROPS = ("center", "smart")

# Interleaved 8-bit formats: channel count and where R, G, B sit in a pixel.
INTERLEAVED_FORMATS = {
    "BGR": (3, (2, 1, 0)),
    "RGB": (3, (0, 1, 2)),
    "BGRA": (4, (2, 1, 0)),
    "RGBA": (4, (0, 1, 2)),
    "GRAY": (1, (0, 0, 0)),
}
# Camera YUV formats (4:2:0 / 4:2:2), converted inside the kernel.
YUV_FORMATS = ("NV12", "NV21", "I420", "YUYV")
INPUT_FORMATS = tuple(INTERLEAVED_FORMATS) + YUV_FORMATS

# Plans cached per Preprocessor (input size and crop shift -> tables). Each plan holds two small
# tables (a few KB); the bound keeps a stream of odd sizes from growing memory.
PLAN_CACHE_SIZE = 64
# Model inputs are at most a few thousand pixels a side; a bigger size is almost surely a mistake
# (and would try to allocate gigabytes).
MAX_SIZE = 8192


def _choices(values) -> str:
    return ", ".join(repr(v) for v in values)


def _normalize_size(size) -> tuple[int, int]:
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    elif isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2 and all(
            isinstance(s, Integral) and not isinstance(s, bool) for s in size):
        size = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"size must be an int or a (height, width) pair of ints, got {size!r}")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    if size[0] > MAX_SIZE or size[1] > MAX_SIZE:
        raise ValueError(f"size {size!r} is larger than {MAX_SIZE} pixels per side (a model input, not a photo)")
    return size


def _three(name: str, values) -> tuple[float, float, float]:
    if isinstance(values, Real):
        values = (values,)
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a number or a sequence of 1 or 3 numbers, got {values!r}")
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        shown = " ".join(repr(values).split())
        raise TypeError(f"{name} must be a number or a sequence of 1 or 3 numbers, got {shown}") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"{name} must have 1 or 3 values (one per RGB channel), got {len(values)}: {values!r}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite, got {values!r}")
    return values


def _choice(name: str, value, valid, normalize=str.lower):
    if not isinstance(value, str) or normalize(value) not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {_choices(valid)}")
    return normalize(value)


@dataclass(frozen=True)
class PreprocessConfig:
    """What a ``Preprocessor`` does, validated and normalized.

    Attributes mirror the ``Preprocessor`` parameters; ``size`` is always ``(height, width)`` and
    ``mean``/``std`` always three values in RGB order, in [0, 1] units (torchvision convention).
    """

    size: tuple[int, int] = (224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    antialias: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_format: str = "BGR"
    layout: str = "NCHW"
    dtype: str = "float32"
    threads: int | None = None
    crop: str = "center"

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "size", _normalize_size(self.size))
        crop_pct = self.crop_pct
        if isinstance(crop_pct, bool) or not isinstance(crop_pct, Real) or not (0.0 < float(crop_pct) <= 1.0):
            raise ValueError(f"crop_pct must be a number in (0, 1], got {crop_pct!r}")
        set_(self, "crop_pct", float(crop_pct))
        set_(self, "interpolation", _choice("interpolation", self.interpolation, INTERPOLATIONS))
        if not isinstance(self.antialias, (bool, np.bool_)):
            raise TypeError(f"antialias must be True or False, got {self.antialias!r}")
        set_(self, "antialias", bool(self.antialias))
        set_(self, "mean", _three("mean", self.mean))
        std = _three("std", self.std)
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {std!r}")
        with np.errstate(all="ignore"):
            scale = 1.0 / (255.0 * np.asarray(std, np.float64))
            bias = -np.asarray(self.mean, np.float64) * scale * 255.0
        if not (np.isfinite(scale.astype(np.float32)).all() and np.isfinite(bias.astype(np.float32)).all()):
            raise ValueError(f"mean / std give non-finite float32 normalization (std too small?): "
                             f"mean={self.mean!r}, std={std!r}")
        set_(self, "std", std)
        set_(self, "input_format", _choice("input_format", self.input_format, INPUT_FORMATS, str.upper))
        set_(self, "layout", _choice("layout", self.layout, LAYOUTS, str.upper))
        dtype = self.dtype
        if isinstance(dtype, (type, np.dtype)):
            try:
                dtype = np.dtype(dtype).name
            except TypeError:
                pass
        set_(self, "dtype", _choice("dtype", dtype, DTYPES))
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, Integral)
                                         or self.threads < 1):
            raise ValueError(f"threads must be None or a positive int, got {self.threads!r}")
        set_(self, "crop", _choice("crop", self.crop, CROPS))

    @property
    def min_short_side(self) -> int:
        """Short side a source needs so the resize never upscales (the decoder may reduce down to it)."""
        return geometry.min_short_side(self.size, self.crop_pct)


@dataclass(frozen=True, eq=False)
class _Plan:
    """Everything the kernel needs for one input geometry (cached)."""

    geometry: geometry.ResizeCrop
    y: AxisTable
    x: AxisTable


def _as_source(image, input_format: str):
    """Validate ``image`` for ``input_format`` and describe its memory for the kernel.

    Returns ``(flat, base, row_stride, pixel_stride, channel_stride, channels, h, w)`` where
    ``flat`` is a 1-D uint8 view covering the image's bytes (no copy) and the strides are in bytes.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H, W, C) of uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image dtype must be uint8, got {image.dtype}; convert first "
                        f"(e.g. np.clip(x * 255, 0, 255).astype(np.uint8) for [0, 1] floats)")
    channels, _ = INTERLEAVED_FORMATS[input_format]
    if channels == 1 and image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    expected = "(H, W)" if channels == 1 else f"(H, W, {channels})"
    if (channels == 1 and image.ndim != 2) or (channels > 1 and (image.ndim != 3 or image.shape[2] != channels)):
        raise ValueError(f"image of shape {image.shape} does not fit input_format {input_format!r}, "
                         f"which expects {expected}; valid formats: {_choices(INTERLEAVED_FORMATS)}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    strides = image.strides if image.ndim == 3 else image.strides + (1,)
    row_stride, pixel_stride, channel_stride = strides
    if image.flags.c_contiguous:
        return image.reshape(-1), 0, row_stride, pixel_stride, channel_stride, channels, h, w
    # A 1-D byte view from the lowest to the highest address the image touches.
    low = sum((n - 1) * s for n, s in zip(image.shape, image.strides) if s < 0)
    high = sum((n - 1) * s for n, s in zip(image.shape, image.strides) if s > 0)
    lowest = image[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in image.strides)]
    flat = np.lib.stride_tricks.as_strided(lowest, shape=(high - low + 1,), strides=(1,), writeable=False)
    return flat, -low, row_stride, pixel_stride, channel_stride, channels, h, w


class Preprocessor:
    """Turn an image into a model input: resize (aspect kept) + center crop + color + normalize + layout.

    One fused pass computes only the pixels inside the crop window.

    Parameters
    ----------
    size : int or (int, int), default 224
        Output (height, width). An int means a square.
    crop_pct : float, default 0.875
        torchvision/timm convention: resize so the short side is ``int(size / crop_pct)``, then
        center-crop ``size``. 1.0 resizes the short side straight to ``size``.
    interpolation : {"bilinear", "bicubic", "nearest", "area"}, default "bilinear"
    antialias : bool, default True
        Widen bilinear/bicubic filters when shrinking, as Pillow (and torchvision on PIL images) do.
        False matches OpenCV ``INTER_LINEAR``/``INTER_CUBIC``. "nearest" and "area" ignore it.
    mean, std : float or 3 floats, default ImageNet
        In [0, 1] units and RGB order; float output is ``(x / 255 - mean) / std``.
    input_format : {"BGR", "RGB", "BGRA", "RGBA", "GRAY", "NV12", "NV21", "I420", "YUYV"}, default "BGR"
        Layout of the 8-bit input arrays (OpenCV decodes to BGR).
    layout : {"NCHW", "NHWC"}, default "NCHW"
    dtype : {"float32", "uint8", "float16"}, default "float32"
        "uint8" returns the resized RGB pixels without normalization (for quantized models).
    threads : int or None, default None
        Threads for :meth:`batch`: the images of a batch are shared among up to ``threads``
        threads (the calling one included). One image always runs on the calling thread (the
        kernels release the GIL, so applications may call one Preprocessor from many threads).
        None or 1: the calling thread only.
    crop : {"center", "smart"}, default "center"
        "smart" shifts the crop window along the long axis toward the region with the most edges.

    Notes
    -----
    ``pre(image)`` returns shape ``(1, 3, h, w)`` for NCHW or ``(1, h, w, 3)`` for NHWC, of
    ``dtype``, C-contiguous. Channels are always RGB.

    Examples
    --------
    >>> import numpy as np
    >>> from fixres_edge import Preprocessor
    >>> pre = Preprocessor(size=224)
    >>> frame = np.zeros((480, 640, 3), np.uint8)
    >>> pre(frame).shape
    (1, 3, 224, 224)
    """

    def __init__(self, size=224, crop_pct=0.875, interpolation="bilinear", antialias=True,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, input_format="BGR", layout="NCHW",
                 dtype="float32", threads=None, crop="center"):
        self._setup(PreprocessConfig(size=size, crop_pct=crop_pct, interpolation=interpolation,
                                     antialias=antialias, mean=mean, std=std, input_format=input_format,
                                     layout=layout, dtype=dtype, threads=threads, crop=crop))

    @classmethod
    def from_config(cls, config: PreprocessConfig) -> "Preprocessor":
        """A Preprocessor for an existing (validated) config."""
        self = cls.__new__(cls)
        self._setup(config)
        return self

    def _setup(self, config: PreprocessConfig) -> None:
        self.config = config
        mean = np.asarray(config.mean, np.float64)
        std = np.asarray(config.std, np.float64)
        if config.dtype == "uint8":
            self._scale = np.ones(3, np.float32)
            self._bias = np.zeros(3, np.float32)
        else:
            # (x / 255 - mean) / std == x * (1 / (255 std)) + (-mean / std): one FMA per value.
            self._scale = (1.0 / (255.0 * std)).astype(np.float32)
            self._bias = (-mean / std).astype(np.float32)
        self._out_dtype = np.dtype(config.dtype)
        h, w = config.size
        # Shape of one output item, (3, h, w) or (h, w, 3): derived once, used on every call.
        self._item_shape = (3, h, w) if config.layout == "NCHW" else (h, w, 3)
        # Bicubic overshoots 0..255 (negative lobes): clamp as 8-bit pipelines do. Antialiased
        # bicubic also follows Pillow's pass order, which rounds and clips between the passes.
        self._clamp = config.interpolation == "bicubic"
        self._pillow_order = config.interpolation == "bicubic" and config.antialias
        self._plans: OrderedDict = OrderedDict()
        self._plans_lock = threading.Lock()
        self._local = threading.local()

    def __repr__(self) -> str:
        c = self.config
        return (f"Preprocessor(size={c.size}, crop_pct={c.crop_pct}, interpolation={c.interpolation!r}, "
                f"antialias={c.antialias}, mean={c.mean}, std={c.std}, input_format={c.input_format!r}, "
                f"layout={c.layout!r}, dtype={c.dtype!r}, threads={c.threads}, crop={c.crop!r})")

    def replace(self, **changes) -> "Preprocessor":
        """A new Preprocessor with some parameters changed (``dataclasses.replace`` on the config)."""
        return Preprocessor.from_config(replace(self.config, **changes))

    @property
    def min_short_side(self) -> int:
        """Short side (pixels) a source needs so that the resize never has to upscale."""
        return self.config.min_short_side

    def out_shape(self, n: int = 1) -> tuple[int, int, int, int]:
        """Output shape for a batch of ``n``: (n, 3, h, w) for NCHW, (n, h, w, 3) for NHWC."""
        if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        return (n, *self._item_shape)

    # ------------------------------------------------------------------ planning
    def plan(self, in_h: int, in_w: int, shift: tuple[int, int] = (0, 0)) -> _Plan:
        """Geometry and per-axis tables for an ``in_h`` x ``in_w`` source (cached, bounded LRU)."""
        key = (in_h, in_w, shift)
        plans = self._plans
        with self._plans_lock:
            cached = plans.get(key)
            if cached is not None:
                plans.move_to_end(key)
                return cached
        c = self.config
        g = geometry.plan_resize_crop(in_h, in_w, c.size, c.crop_pct, shift)
        shrinking = g.resized_h <= in_h and g.resized_w <= in_w
        y = axis_table(in_h, g.resized_h, g.top, g.out_h, c.interpolation, c.antialias, shrinking)
        x = axis_table(in_w, g.resized_w, g.left, g.out_w, c.interpolation, c.antialias, shrinking)
        made = _Plan(g, y, x)
        with self._plans_lock:
            plans[key] = made
            plans.move_to_end(key)
            while len(plans) > PLAN_CACHE_SIZE:
                plans.popitem(last=False)
        return made

    def workspace(self, name: str, size: int, dtype) -> np.ndarray:
        """A per-thread 1-D work buffer of ``size`` elements, grown on demand and then reused.

        Kernels get their scratch memory from here so that steady-state calls allocate nothing;
        one buffer per calling thread keeps concurrent calls independent.
        """
        buffers = self._local.__dict__.setdefault("workspace", {})
        buf = buffers.get(name)
        if buf is None or buf.shape[0] < size:
            buf = np.zeros(max(size, 0 if buf is None else buf.shape[0]), dtype)
            buffers[name] = buf
            # Prepared launches point into the old buffers: prepare them again.
            self._launches().clear()
        return buf[:size]

    def _check_out(self, out, n: int) -> np.ndarray:
        shape = (n, *self._item_shape)  # n comes from this class: no need for out_shape's check
        if out is None:
            return np.empty(shape, self._out_dtype)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array of shape {shape} and dtype {self._out_dtype}, "
                            f"got {type(out).__name__}")
        if out.shape != shape or out.dtype != self._out_dtype:
            raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; expected shape {shape} "
                             f"and dtype {self._out_dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writeable")
        return out

    # ------------------------------------------------------------------ running
    def __call__(self, image: np.ndarray, out: np.ndarray | None = None,
                 input_format: str | None = None, *, width: int | None = None) -> np.ndarray:
        """Preprocess one image.

        Parameters
        ----------
        image : ndarray of uint8
            (H, W, C) for interleaved formats, (H, W) for GRAY, (H * 3 // 2, W) for NV12/NV21/I420,
            (H, W, 2) for YUYV. Any strides; views are read in place.
        out : ndarray, optional
            Destination of shape ``out_shape(1)`` and the configured dtype, C-contiguous.
        input_format : str, optional
            Overrides the configured ``input_format`` for this call.
        width : int, optional
            YUV frames only: the image width when the array's rows are padded (e.g. picamera2's
            ``(H * 3 // 2, stride)`` I420 arrays).

        Returns
        -------
        ndarray
            ``(1, 3, h, w)`` (NCHW) or ``(1, h, w, 3)`` (NHWC) of the configured dtype.
        """
        out = self._check_out(out, 1)
        self._run(image, out[0], input_format, width)
        return out

    def batch(self, images: Sequence[np.ndarray], out: np.ndarray | None = None,
              input_format: str | None = None) -> np.ndarray:
        """Preprocess a list of images of any sizes into one ``(N, ...)`` array.

        Returns
        -------
        ndarray
            ``(N, 3, h, w)`` (NCHW) or ``(N, h, w, 3)`` (NHWC) of the configured dtype.
        """
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        if not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
            raise TypeError(f"images must be a list of arrays, got {type(images).__name__}")
        out = self._check_out(out, len(images))
        threads = min(self.config.threads or 1, len(images))
        if threads <= 1:
            for i, image in enumerate(images):
                self._run(image, out[i], input_format)
            return out
        # Across images: each thread takes a contiguous share of the batch (kernels release the
        # GIL, and each thread has its own scratch memory); the calling thread takes the first.
        bounds = [len(images) * t // threads for t in range(threads + 1)]

        def share(t: int) -> None:
            for i in range(bounds[t], bounds[t + 1]):
                self._run(images[i], out[i], input_format)

        futures = [_batch_pool().submit(share, t) for t in range(1, threads)]
        try:
            share(0)
        finally:
            for future in futures:
                future.result()
        return out

    def load(self, source, out: np.ndarray | None = None) -> np.ndarray:
        """Decode ``source`` (path, bytes or file object) at the smallest size that suffices, then preprocess.

        JPEGs are decoded with DCT-domain reduction (1/2, 1/4, 1/8) while the short side stays
        at least ``min_short_side``.

        Returns
        -------
        ndarray
            Same as ``__call__``.
        """
        from fixres_edge.decode import load_image

        image = load_image(source, min_short_side=self.min_short_side)
        return self(image, out=out, input_format="BGR")

    def _run(self, image, out: np.ndarray, input_format: str | None, width: int | None = None) -> None:
        fmt = self.config.input_format
        if input_format is not None and input_format != fmt:
            fmt = _choice("input_format", input_format, INPUT_FORMATS, str.upper)
        if fmt in YUV_FORMATS:
            from fixres_edge.yuv import run_yuv

            run_yuv(self, image, out, fmt, width)
            return
        if width is not None:
            raise ValueError(f"width= applies only to YUV frames ({', '.join(YUV_FORMATS)}), "
                             f"not to input_format {fmt!r}")
        if type(image) is np.ndarray and self.config.crop == "center" and image.flags.c_contiguous:
            # The common case (a decoded frame, a contiguous array): everything but the pixels is a
            # function of (format, shape, dtype), so the validated launch is reused and a call costs
            # a dict lookup instead of validation, planning and packing the launch record.
            launch = self.cached_launch((fmt, image.shape, image.dtype), lambda: self._prepare(image, fmt, (0, 0))[1])
            launch.run(image.reshape(-1), out)
            return
        shift = (0, 0)
        if self.config.crop == "smart":
            from fixres_edge.smart_crop import smart_shift

            shift = smart_shift(image, fmt, self.config)
        flat, launch = self._prepare(image, fmt, shift)
        launch.run(flat, out)

    def cached_launch(self, key, prepare) -> "_Launch":
        """This thread's launch for ``key``, from ``prepare()`` the first time (a bounded LRU).

        ``key`` must determine everything the launch record holds but the source and output
        addresses (geometry, strides, format); the launches hold this thread's scratch buffers.
        """
        launches = self._launches()
        launch = launches.get(key)
        if launch is not None:
            launches.move_to_end(key)  # an LRU (an OrderedDict: no allocation on a hit)
            return launch
        launch = prepare()
        if len(launches) >= PLAN_CACHE_SIZE:
            launches.popitem(last=False)
        launches[key] = launch
        return launch

    def _launches(self) -> dict:
        """This thread's prepared launches (they hold this thread's scratch buffers)."""
        launches = self._local.__dict__.get("launches")
        if launches is None:
            launches = self._local.launches = OrderedDict()
        return launches

    def _prepare(self, image, fmt: str, shift: tuple[int, int]) -> tuple[np.ndarray, "_Launch"]:
        """Validate ``image`` and prepare the kernel launch for its geometry: ``(flat bytes, launch)``."""
        flat, base, row_stride, pixel_stride, channel_stride, channels, h, w = _as_source(image, fmt)
        plan = self.plan(h, w, shift)
        g = plan.geometry
        c0, c1, c2 = INTERLEAVED_FORMATS[fmt][1]
        scratch = self.workspace("rows", launch.interleaved_scratch_floats(plan.x.hi - plan.x.lo, channels, g.out_w),
                                 np.float32)
        fields = dict(self.resample_fields(plan, scratch), source_offset=base, row_stride=row_stride,
                      pixel_stride=pixel_stride, channel_stride=channel_stride, channels=channels, c0=c0, c1=c1,
                      c2=c2)
        if self._pillow_order:
            # Pillow's horizontal-first order with an 8-bit intermediate (see the kernel): exact
            # fixed-point horizontal weights and a ring of resampled rows, one slot per vertical tap.
            record = launch.PillowOrderLaunch(
                **fields, x_fixed=plan.x.fixed_weights,
                row_bytes=self.workspace("row_bytes", (plan.x.hi - plan.x.lo) * channels, np.uint8),
                ring=self.workspace("ring", plan.y.taps * 3 * g.out_w, np.float32),
                ring_ids=self.workspace("ring_ids", plan.y.taps, np.int64))
            return flat, self.bind("pillow_order", record)
        return flat, self.bind("interleaved", launch.InterleavedLaunch(**fields))

    def resample_fields(self, plan: _Plan, scratch: np.ndarray) -> dict:
        """The fields every resampling launch shares (``launch.ResampleSpec``): this configuration's
        output and normalization, ``plan``'s per-axis tables, and the thread's ``scratch``."""
        g = plan.geometry
        scale, bias = self._scale, self._bias
        return dict(out_h=g.out_h, out_w=g.out_w, out_uint8=self._out_dtype == np.uint8,
                    channels_last=self.config.layout == "NHWC",
                    # float32 NCHW output is written directly by the horizontal pass; other dtypes
                    # and layouts go through a small per-row store loop.
                    direct=self.config.layout == "NCHW" and self._out_dtype == np.float32,
                    clamp=self._clamp, s0=scale[0], s1=scale[1], s2=scale[2], b0=bias[0], b1=bias[1], b2=bias[2],
                    taps_y=plan.y.taps, taps_x=plan.x.taps, x_lo=plan.x.lo, x_hi=plan.x.hi, y_start=plan.y.start,
                    y_weights=plan.y.weights, x_start=plan.x.start, x_weights=plan.x.weights, scratch=scratch,
                    scratch_len=scratch.shape[0])

    def bind(self, kernel_name: str, record) -> "_Launch":
        """A launch of kernel ``kernel_name`` with ``record`` (one thread's scratch), ready to ``run``."""
        from fixres_edge._jit import kernel

        staging = None
        if self._out_dtype == np.float16:
            # Numba has no float16 arithmetic: compute float32, then one numpy cast.
            size = record.out_h * record.out_w * 3
            staging = self.workspace("float32_out", size, np.float32).reshape(self._item_shape)
        return _Launch(kernel(kernel_name), launch.pack(record), staging)


class _Launch:
    """A kernel bound to one geometry and one thread's scratch memory: ``run(flat, out)`` preprocesses.

    Built by ``Preprocessor.bind``; cached per (format, shape) for contiguous inputs, so that the
    steady state costs the kernel plus a few microseconds.
    """

    __slots__ = ("kernel", "packed", "staging")

    def __init__(self, kernel, packed: launch.PackedLaunch, staging):
        self.kernel = kernel
        self.packed = packed
        self.staging = staging

    def run(self, flat: np.ndarray, out: np.ndarray) -> None:
        target = out if self.staging is None else self.staging
        self.packed.bind(flat, target)
        self.kernel(self.packed)
        if self.staging is not None:
            np.copyto(out, self.staging, casting="same_kind")


_pool = None
_pool_lock = threading.Lock()


def _batch_pool():
    """The process's worker threads for ``Preprocessor.batch`` with ``threads > 1`` (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                       thread_name_prefix="fixres_edge-batch")
    return _pool
