"""The region around a mask: where a model works, and how its pixels go back into the picture.

The server owns grow, feather and context (``Request.inpaint``); bridges send the artist's own
soft mask. Every engine that regenerates part of a picture does the same three things here:

    1. ``find_region``: the mask's bounding box, grown, plus context, clamped to the picture
       (``plugin.regions.context_box``, the function bridges crop with too), and the blend
       weight inside that box
    2. the engine makes new pixels for the box
    3. ``paste``: the picture with the box blended in through the weight (``composite``), or
       only the new pixels with the weight as alpha (``layer``, for hosts with layers)

The weight is the mask grown by ``grow`` pixels with a ``feather``-wide smooth ramp inside the
grown edge, and never below the mask's own soft values: pixels beyond the grown mask keep their
exact input values.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from brushlink.plugin.regions import DEFAULT_CONTEXT, Box, context_box, default_edges
from brushlink.plugin.request import InpaintParams


@dataclass(frozen=True)
class Region:
    box: Box  # where the engine works, in picture pixels
    weight: np.ndarray  # box-sized float32 in [0, 1]: how much of the new pixels to take
    grow: int
    feather: int


def mask_bounds(mask: np.ndarray) -> Box | None:
    """The bounding box of the mask's non-zero pixels, or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    x0, y0 = int(xs.min()), int(ys.min())
    return Box(x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0)


def edges(bounds: Box, params: InpaintParams) -> tuple[int, int]:
    """Grow and feather in pixels: the request's, else 1 % and 2 % of the region's diagonal."""
    return default_edges(bounds, params.grow, params.feather)


def find_region(
    mask: np.ndarray,
    params: InpaintParams,
    *,
    context: float = DEFAULT_CONTEXT,
    min_context: int = 16,
) -> Region | None:
    """Step 1 for an engine: the box it works in and the blend weight there (None: no mask).

    ``context`` is the engine's default share of surroundings (a fraction of the region's
    diagonal on every side), used when the request does not set ``inpaint.context``.
    """
    bounds = mask_bounds(mask)
    if bounds is None:
        return None
    grow, feather = edges(bounds, params)
    height, width = mask.shape
    fraction = params.context if params.context is not None else context
    box = context_box(
        bounds,
        Box(0, 0, width, height),
        grow=grow,
        margin=fraction,
        multiple=1,
        min_pad=min_context,
    )
    crop = mask[box.y : box.bottom, box.x : box.right]
    return Region(box, blend_weight(crop, grow, feather), grow, feather)


def blend_weight(mask: np.ndarray, grow: int, feather: int) -> np.ndarray:
    """Float weight in [0, 1]: 0 beyond the mask grown by ``grow``, a smoothstep ramp
    ``feather`` px wide inside the grown edge, never less than the mask's own value."""
    hole: np.ndarray = (mask > 0).astype(np.uint8)
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        hole = cv2.dilate(hole, kernel)
    if feather > 0:
        # distance to the nearest pixel outside the grown mask; the picture's own edge is not
        # an outside, so a mask that reaches the border is taken fully there (outpainting)
        dist = cv2.distanceTransform(hole, cv2.DIST_L2, 5)
        t = np.clip(dist / feather, 0.0, 1.0)
        ramp = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible kink where the ramp ends
    else:
        ramp = hole.astype(np.float32)
    return (np.maximum(ramp, mask.astype(np.float32) / 255.0) * hole).astype(np.float32)


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    return image[box.y : box.bottom, box.x : box.right]


def paste(image: np.ndarray, region: Region, new: np.ndarray, output: str) -> np.ndarray:
    """Step 3: ``new`` (the box's RGBA pixels) into the full-size picture.

    ``composite``: the picture with the box blended in, exact wherever the weight is 0, and
    opaque where the weight is 1 (a transparent hole becomes picture). ``layer``: a
    transparent picture-sized image holding the new pixels with alpha = weight x their alpha.
    """
    box, w = region.box, region.weight[..., None]
    if output == "layer":
        out = np.zeros_like(image)
        patch = new.copy()
        patch[..., 3] = np.rint(w[..., 0] * new[..., 3]).astype(np.uint8)
        patch[w[..., 0] == 0] = 0
        out[box.y : box.bottom, box.x : box.right] = patch
        return out
    old = crop(image, box).astype(np.float32)
    mixed = np.clip(np.rint(old * (1.0 - w) + new.astype(np.float32) * w), 0, 255).astype(np.uint8)
    untouched = region.weight == 0
    mixed[untouched] = crop(image, box)[untouched]
    out = image.copy()
    out[box.y : box.bottom, box.x : box.right] = mixed
    return out


def unchanged(image: np.ndarray, output: str) -> np.ndarray:
    """What an empty mask gives: the picture as it was, or an empty layer."""
    return np.zeros_like(image) if output == "layer" else image.copy()


def limit_to_mask(
    image: np.ndarray, mask: np.ndarray | None, new: np.ndarray, output: str
) -> np.ndarray:
    """A whole-picture change (a restyle) kept to a mask: the mask's own soft values are the
    weight, with no grow or feather (the artist's selection is the edge)."""
    if mask is None:
        return new
    height, width = mask.shape
    region = Region(Box(0, 0, width, height), mask.astype(np.float32) / 255.0, 0, 0)
    return paste(image, region, new, output)
