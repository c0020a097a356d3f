"""Rectangle geometry shared by the bridges: grow, pad, clamp and snap a region of a canvas.

Standard library only, no I/O: the Krita and Blender bridges turn a selection's bounding box
into the rectangle they send to the server with these functions, so both hosts crop the same
way. Boxes are half-open pixel rectangles: ``x <= px < x + width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_CONTEXT = 0.35  # inpainting context: this share of the region's diagonal on every side
MIN_EDGE = 4  # px: the smallest default grow and feather


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @property
    def diagonal(self) -> float:
        return math.hypot(self.width, self.height)

    def contains(self, other: Box) -> bool:
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.right <= self.right
            and other.bottom <= self.bottom
        )

    def grow(self, dx: int, dy: int | None = None) -> Box:
        """Grow (or shrink, with negative values) by ``dx``/``dy`` pixels on every side."""
        dy = dx if dy is None else dy
        return Box(self.x - dx, self.y - dy, self.width + 2 * dx, self.height + 2 * dy)

    def clamp(self, bounds: Box) -> Box:
        """The part of this box inside ``bounds`` (an empty box when they do not overlap)."""
        x0, y0 = max(self.x, bounds.x), max(self.y, bounds.y)
        x1, y1 = min(self.right, bounds.right), min(self.bottom, bounds.bottom)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def pad_fraction(box: Box, fraction: float, minimum: int = 0) -> Box:
    """Pad every side by ``fraction`` of the box's diagonal (rounded up to whole pixels), and
    by at least ``minimum`` pixels.

    Context for inpainting scales with the region: a small fix needs a little of its
    surroundings, a large one needs more.
    """
    if fraction < 0:
        raise ValueError(f"The context margin must be 0 or more, not {fraction}.")
    pad = max(minimum, math.ceil(box.diagonal * fraction))
    return box.grow(pad)


def _snap_axis(start: int, length: int, lo: int, hi: int, multiple: int) -> tuple[int, int]:
    room = hi - lo
    target = math.ceil(length / multiple) * multiple
    if target > room:
        # The canvas is too small for a multiple that still holds the region: take all of it.
        return lo, room
    start -= (target - length) // 2
    start = min(max(start, lo), hi - target)
    return start, target


def snap(box: Box, multiple: int, bounds: Box) -> Box:
    """Enlarge ``box`` so both sides are multiples of ``multiple``, staying inside ``bounds``.

    The box grows evenly around its centre and slides to stay on the canvas. When the canvas
    itself is narrower than the next multiple, that axis becomes the whole canvas (models that
    need multiples of 8 resize on the server side; dropping part of the region would be worse).
    """
    if multiple < 1:
        raise ValueError(f"`multiple` must be 1 or more, not {multiple}.")
    box = box.clamp(bounds)
    if box.is_empty:
        return box
    x, w = _snap_axis(box.x, box.width, bounds.x, bounds.right, multiple)
    y, h = _snap_axis(box.y, box.height, bounds.y, bounds.bottom, multiple)
    return Box(x, y, w, h)


def context_box(
    region: Box,
    bounds: Box,
    *,
    grow: int = 0,
    margin: float = 0.0,
    multiple: int = 8,
    min_pad: int = 0,
) -> Box:
    """The rectangle sent to the server for ``region`` (e.g. a selection's bounding box).

    ``grow`` pixels (the mask's grow + feather, so no soft edge is cut) and then ``margin``
    times the grown box's diagonal of context (at least ``min_pad`` pixels) are added around
    the region; the result is clamped to ``bounds`` (the canvas) and snapped to multiples of
    ``multiple``. The server crops around a mask with this same function, so a bridge that
    sends this box has sent all the context the server would use.
    """
    if region.is_empty:
        raise ValueError("The region is empty.")
    padded = pad_fraction(region.grow(max(0, grow)), margin, min_pad)
    return snap(padded.clamp(bounds), multiple, bounds)


def default_edges(region: Box, grow: int | None, feather: int | None) -> tuple[int, int]:
    """Grow and feather in pixels for a masked region: as given, else 1 % and 2 % of the
    region's diagonal (at least ``MIN_EDGE``). The server grows and feathers; a bridge uses
    this to know how far past the selection the result may reach."""
    diagonal = region.diagonal
    return (
        grow if grow is not None else max(MIN_EDGE, round(0.01 * diagonal)),
        feather if feather is not None else max(MIN_EDGE, round(0.02 * diagonal)),
    )
