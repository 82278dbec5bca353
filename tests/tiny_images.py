"""Small generated images, encoded images and labeled folders for the tests (no photos, no ../shared).

* :func:`jpeg_bytes`: a smooth random color image encoded as JPEG, for decode-path tests;
* :func:`color_image`: a BGR image of one of :data:`COLORS`, the classes of ``tiny_models.color_model``;
* :func:`make_folder`: a labeled folder of such images (flat ``<wnid>_<k>.png`` or ImageFolder
  layout) with a class table, as ``fixres-edge eval`` and ``calibrate`` read them.

Import from test modules (``from tiny_images import ...``), never from another test module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = ("red", "green", "blue")
# BGR pixel values of each class color (OpenCV order).
BGR = {"red": (30, 40, 220), "green": (40, 210, 30), "blue": (220, 40, 30)}


def jpeg_bytes(h: int, w: int, seed: int = 0) -> bytes:
    """A smooth random (h, w) color image encoded as JPEG (quality 92)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (3, 4, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return data.tobytes()


def color_image(color: str, h: int = 30, w: int = 40, seed: int = 0, mix: float = 0.0,
                other: str | None = None, border: str | None = None) -> np.ndarray:
    """A BGR uint8 (h, w, 3) image of ``color`` with mild noise; ``mix`` blends toward ``other``;
    ``border`` paints the outer quarter another color (the center keeps ``color``)."""
    rng = np.random.default_rng(seed)
    base = np.array(BGR[color], np.float64)
    if other is not None:
        base = (1 - mix) * base + mix * np.array(BGR[other], np.float64)
    image = np.empty((h, w, 3), np.float64)
    image[:] = base
    if border is not None:
        qh, qw = h // 4, w // 4
        ring = np.ones((h, w), bool)
        ring[qh:h - qh, qw:w - qw] = False
        image[ring] = BGR[border]
    image += rng.normal(0, 6, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def wnid(i: int) -> str:
    """A WordNet-style id for class ``i``: ``n00000001``."""
    return f"n{i:08d}"


def write_table(path: Path, count: int = 3, header: bool = True) -> Path:
    """A class table of the first ``count`` COLORS: ``index wnid name`` (TSV with header) or ``wnid name``."""
    lines = (["index\twnid\tname"] if header else []) + [
        (f"{i}\t{wnid(i)}\t{COLORS[i]}" if header else f"{wnid(i)} {COLORS[i]}") for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_folder(root: Path, per_class: int = 3, layout: str = "flat", table: bool = True,
                wrong: int = 0, seed: int = 0) -> Path:
    """A labeled folder of color images; ``wrong`` images carry a deliberately wrong label.

    layout "flat": ``<wnid>_<k>.png`` files (name hints do not match labels: numbered);
    "imagefolder": ``<wnid>/img_<k>.png``. With ``table``, ``classes.tsv`` names the classes.
    """
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    k = 0
    for c, color in enumerate(COLORS):
        for j in range(per_class):
            label = (c + 1) % 3 if k < wrong else c
            image = color_image(color, seed=seed + k, mix=0.2 * (j % 3), other=COLORS[(c + 1) % 3])
            if layout == "flat":
                target = root / f"{wnid(label)}_{k:03d}.png"
            else:
                target = root / wnid(label) / f"img_{k:03d}.png"
                target.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(target), image)
            k += 1
    if table:
        write_table(root / "classes.tsv")
    return root
