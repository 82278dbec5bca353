"""Smart crop: move the crop window along the long axis toward the region with the most edges.

The center crop of ``Resize(int(R / crop_pct)) + CenterCrop(R)`` throws away the ends of the long
axis. When the subject sits off-center, a window shifted toward it keeps more of it. The
heuristic here is deliberately cheap (tens of microseconds, against about 100-250 us for the
preprocessing itself at 224): it looks at a ~32-pixel thumbnail of one channel, sums the gradient
magnitude across the short axis into a profile along the long axis, and slides a window as long
as the crop over that profile. The window with the most edge energy wins, unless it beats the
centered window by less than :data:`MIN_GAIN` (photographers center their subjects; a flat or
evenly textured image keeps the center crop).

:func:`smart_shift` is called by :class:`fixres_edge.preprocess.Preprocessor` when
``crop="smart"``; its result is the ``shift`` argument of
:func:`fixres_edge.geometry.plan_resize_crop`.
"""
from __future__ import annotations

import cv2
import numpy as np

from fixres_edge import geometry

#: Short side of the thumbnail the edge energy is measured on (pixels).
THUMB_SHORT = 32
#: The source is point-sampled down to at least this multiple of the thumbnail before the
#: area-averaging resize: a strided gather of a few thousand pixels instead of reading the whole
#: frame (a 12 MP frame would otherwise cost milliseconds).
OVERSAMPLE = 2
#: Minimum relative edge-energy gain over the centered window before the window moves.
MIN_GAIN = 0.10
#: Shifts smaller than this (resized-image pixels) are not worth a new geometry plan.
MIN_SHIFT = 2

# Channel used for the luminance proxy (green carries most of the luminance in RGB and BGR).
_GREEN = {"BGR": 1, "RGB": 1, "BGRA": 1, "RGBA": 1, "GRAY": 0}


def _thumbnail(image: np.ndarray, input_format: str) -> np.ndarray:
    """A float32 (th, tw) thumbnail of one channel, short side about :data:`THUMB_SHORT`."""
    h, w = image.shape[:2]
    plane = image if image.ndim == 2 else image[:, :, _GREEN.get(input_format, 0)]
    step = max(1, min(h, w) // (THUMB_SHORT * OVERSAMPLE))
    small = np.ascontiguousarray(plane[::step, ::step])
    sh, sw = small.shape
    short = min(sh, sw, THUMB_SHORT)
    if sh <= sw:
        th, tw = short, max(short, int(round(sw * short / sh)))
    else:
        th, tw = max(short, int(round(sh * short / sw))), short
    if (th, tw) != (sh, sw):
        small = cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32)


def edge_profile(thumb: np.ndarray, axis: int) -> np.ndarray:
    """Gradient magnitude of ``thumb`` summed across the other axis.

    Returns
    -------
    ndarray
        float64, length ``thumb.shape[axis]``: the edge energy of each row (axis 0) or column
        (axis 1). Forward differences, L1 magnitude ``|dx| + |dy|``, edge-replicated so that the
        profile keeps the thumbnail's length.
    """
    dx = np.abs(np.diff(thumb, axis=1, append=thumb[:, -1:]))
    dy = np.abs(np.diff(thumb, axis=0, append=thumb[-1:, :]))
    return (dx + dy).sum(axis=1 - axis, dtype=np.float64)


def best_window(profile: np.ndarray, length: int, center: int, min_gain: float | None = None) -> int:
    """Start of the ``length``-long window of ``profile`` with the largest sum.

    Returns ``center`` (the centered window's start) unless the best window's sum exceeds the
    centered one's by more than ``min_gain`` (relative). Ties go to the window nearest the center.
    """
    if min_gain is None:
        min_gain = MIN_GAIN
    n = profile.shape[0]
    length = min(max(1, length), n)
    if length >= n:
        return 0
    csum = np.concatenate(([0.0], np.cumsum(profile)))
    sums = csum[length:] - csum[:-length]            # sums[j] = profile[j:j + length].sum()
    center = min(max(center, 0), n - length)
    best = float(sums.max())
    if best <= sums[center] * (1.0 + min_gain):
        return center
    ties = np.flatnonzero(sums >= best)
    return int(ties[np.argmin(np.abs(ties - center))])


def smart_shift(image: np.ndarray, input_format: str, config) -> tuple[int, int]:
    """Shift of the crop window, in resized-image pixels, toward the region with the most edges.

    Parameters
    ----------
    image : ndarray of uint8
        (H, W, C) interleaved image (or (H, W) / (H, W, 1) for GRAY), already validated by the
        Preprocessor.
    input_format : str
        "BGR", "RGB", "BGRA", "RGBA" or "GRAY".
    config : PreprocessConfig
        Supplies ``size`` (out height, width) and ``crop_pct``.

    Returns
    -------
    (int, int)
        ``(dy, dx)`` to add to the centered window's offset: nonzero only along the axis with the
        most room to move (the long axis), and small enough that the window stays inside the
        resized image. ``(0, 0)`` keeps the center crop.
    """
    h, w = image.shape[:2]
    g = geometry.plan_resize_crop(h, w, config.size, config.crop_pct)
    slack_y, slack_x = g.resized_h - g.out_h, g.resized_w - g.out_w
    if slack_x == slack_y:
        return (0, 0)  # no long axis (square crop of a square-ish image)
    axis = 1 if slack_x > slack_y else 0
    slack = max(slack_x, slack_y)
    if slack < MIN_SHIFT:
        return (0, 0)
    resized = g.resized_w if axis == 1 else g.resized_h
    out = g.out_w if axis == 1 else g.out_h
    start = g.left if axis == 1 else g.top
    thumb = _thumbnail(image, input_format)
    profile = edge_profile(thumb, axis)
    n = profile.shape[0]
    scale = n / resized                               # thumbnail pixels per resized pixel
    length = min(max(1, int(round(out * scale))), n)
    center = min(max(int(round(start * scale)), 0), n - length)
    chosen = best_window(profile, length, center)
    if chosen == center:
        return (0, 0)
    target = int(round(chosen / scale))
    shift = min(max(target - start, -start), slack - start)  # keep the window inside the image
    if abs(shift) < MIN_SHIFT:
        return (0, 0)
    return (0, shift) if axis == 1 else (shift, 0)
