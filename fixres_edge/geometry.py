"""Resize-and-crop geometry (pure Python, no numpy): where each output pixel comes from.

The rule is torchvision's ``Resize(int(size / crop_pct))`` followed by ``CenterCrop(size)``, the
evaluation transform of timm and torchvision classifiers, so models see what they were tested with.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResizeCrop:
    """Where an output window sits in the resized image.

    Attributes
    ----------
    in_h, in_w : int
        Source image size.
    resized_h, resized_w : int
        Size of the (virtual) resized image; it is never materialized.
    top, left : int
        Offset of the crop window in the resized image.
    out_h, out_w : int
        Output (crop) size.
    """

    in_h: int
    in_w: int
    resized_h: int
    resized_w: int
    top: int
    left: int
    out_h: int
    out_w: int

    @property
    def is_identity(self) -> bool:
        """True when no resampling is needed (the crop is a plain copy of source pixels)."""
        return self.resized_h == self.in_h and self.resized_w == self.in_w


def resize_target(size: tuple[int, int], crop_pct: float) -> tuple[int, int]:
    """The (height, width) the resized image must cover: ``int(size / crop_pct)`` per axis."""
    return int(size[0] / crop_pct), int(size[1] / crop_pct)


def min_short_side(size: tuple[int, int], crop_pct: float) -> int:
    """The smallest source short side that the resize never has to upscale from."""
    return min(resize_target(size, crop_pct))


def center_offset(resized: int, out: int) -> int:
    """torchvision's center-crop offset: ``int(round((resized - out) / 2))`` (Python rounding)."""
    return int(round((resized - out) / 2.0))


def plan_resize_crop(in_h: int, in_w: int, size: tuple[int, int], crop_pct: float,
                     shift: tuple[int, int] = (0, 0)) -> ResizeCrop:
    """Plan an aspect-preserving resize followed by a center crop.

    For a square ``size`` this is exactly torchvision's ``Resize(S)`` with ``S = int(size / crop_pct)``:
    the short side becomes ``S`` and the long side ``int(S * long / short)``. For a non-square
    ``size`` the image is scaled so that it covers ``resize_target(size, crop_pct)``: the axis that
    needs the larger scale gets exactly its target and the other ``int(target * other / that)``.

    Parameters
    ----------
    in_h, in_w : int
        Source size (>= 1).
    size : (int, int)
        Output (height, width).
    crop_pct : float
        Fraction of the resized image that the crop keeps, in (0, 1].
    shift : (int, int)
        Offset added to the centered crop window (clamped to stay inside the resized image); used by
        the "smart" crop. (0, 0) is the center crop.

    Returns
    -------
    ResizeCrop
    """
    target_h, target_w = resize_target(size, crop_pct)
    # Compare target_h / in_h with target_w / in_w without division (exact in integers).
    if target_h * in_w >= target_w * in_h:
        resized_h = target_h
        resized_w = int(target_h * in_w / in_h) if in_h != in_w else target_h
    else:
        resized_w = target_w
        resized_h = int(target_w * in_h / in_w) if in_h != in_w else target_w
    # torchvision's Resize(int) maps the short side to S and the long side to int(S * long / short);
    # the branch above reproduces it for square targets. Never crop more than exists.
    resized_h = max(resized_h, size[0])
    resized_w = max(resized_w, size[1])
    top = center_offset(resized_h, size[0]) + shift[0]
    left = center_offset(resized_w, size[1]) + shift[1]
    top = min(max(top, 0), resized_h - size[0])
    left = min(max(left, 0), resized_w - size[1])
    return ResizeCrop(in_h, in_w, resized_h, resized_w, top, left, size[0], size[1])
