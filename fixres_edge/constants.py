"""Constants shared across modules: normalization presets and the image file extensions.

Mean and std are in [0, 1] units, RGB order, as torchvision and timm write them.
"""
from __future__ import annotations

#: torchvision / timm ImageNet normalization: the library default when a model card gives none.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: File name extensions (lowercase) taken as images when a directory is listed, by ``classify`` and
#: by labeled folders. Every one decodes through :func:`fixres_edge.decode.load_image` (GIF: the
#: first frame, through OpenCV's GIF decoder).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
