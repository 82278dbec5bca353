"""The scale column of the ``classify`` tables (files and streams): the size that answered, and the
model variant that ran it when the policy names variants (``int8 256``)."""
from __future__ import annotations

from fixres_edge.policy import variant_text

#: Width of a plain size column ("size", up to 4 digits).
SIZE_WIDTH = 4


def column_width(policy) -> int:
    """Width of the column for ``policy``: sizes, or "variant size" when the policy names variants."""
    return max([SIZE_WIDTH] + [len(f"{variant_text(s.variant)} {s.size}".strip()) for s in policy.scales])


def scale_title(width: int) -> str:
    return "size" if width == SIZE_WIDTH else "scale"


def scale_cell(prediction) -> str:
    """The scale that answered ``prediction`` (a cascade's last scale run)."""
    answered = prediction.scales[-1] if prediction.scales else None
    return f"{variant_text(answered.variant if answered else None)} {prediction.size}".strip()
