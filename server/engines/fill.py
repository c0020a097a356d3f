"""Content-aware fill without weights: OpenCV's shift-map or FSR inpainting around each masked region.

Steps of one job:

    0. check inputs and options (also done by ``check`` before the job is queued)
    1. grow the mask, split it into regions, give each region a box with context around it
    2. per region: shrink the box if it is large, inpaint it, scale the fill back up, and
       paste it back through a feathered mask: pixels outside the grown mask keep their exact
       input values; the input alpha channel is kept as it is (one progress step per region)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from brushlink.plugin.errors import ImageMismatch, InvalidField
from brushlink.plugin.protocol import JobSpec

from .base import Engine, EngineJob, EngineOutput, EngineResult, JobContext, ModelInfo

HAS_XPHOTO = hasattr(cv2, "xphoto") and hasattr(cv2.xphoto, "inpaint")

# method -> (longest side of the box, masked pixels) the inpainting works at; a larger box is
# shrunk to fit both, filled, and the fill scaled back up. Budgets keep one region near 2 s of
# CPU: shift-map's time grows faster than linearly with the masked pixels (1.5 s CPU for 4.5k,
# 4.4 s for 8k); FSR-fast costs about a third of that, FSR-best about 20x more; Telea is cheap.
WORK_SIDE = {"shiftmap": 256, "fsr-fast": 256, "fsr-best": 128, "telea": 1024}
HOLE_BUDGET = {"shiftmap": 5_000, "fsr-fast": 12_000, "fsr-best": 2_000, "telea": 60_000}
METHODS = tuple(WORK_SIDE) if HAS_XPHOTO else ("telea",)
DEFAULT_METHOD = "shiftmap" if HAS_XPHOTO else "telea"

DEFAULT_GROW = 6  # px: covers the halo and anti-aliased edge around a selected object
DEFAULT_FEATHER = 6  # px: width of the blend ramp at the edge of the grown mask
MIN_MARGIN = 16  # px of context around a small region
MAX_REGIONS = 32  # more separate regions than this are filled as one box


@dataclass(frozen=True)
class FillOptions:
    method: str = DEFAULT_METHOD
    margin: int | None = None  # px of context around each region; None: half the region's size
    grow: int = DEFAULT_GROW
    feather: int = DEFAULT_FEATHER
    max_side: int | None = None  # working size of the inpainting; None: the method's default

    @property
    def work_side(self) -> int:
        return self.max_side or WORK_SIDE[self.method]

    @property
    def hole_budget(self) -> float:
        # a larger max_side asks for more detail: the masked-pixel budget grows with its area
        ratio = (self.max_side or 0) / WORK_SIDE[self.method]
        return HOLE_BUDGET[self.method] * max(1.0, ratio * ratio)


def parse_options(options: dict[str, Any]) -> FillOptions:
    """Read ``spec.options`` for the fill engine, naming the option and its rule on a bad value."""
    method = options.get("method", DEFAULT_METHOD)
    if method not in METHODS:
        raise InvalidField(
            f"Unknown fill method `{str(method)[:40]}`; this server has {', '.join(METHODS)}.",
            field="options.method",
        )
    return FillOptions(
        method=method,
        margin=_int_option(options, "margin", None, 0, 4096),
        grow=_int_option(options, "grow", DEFAULT_GROW, 0, 256),
        feather=_int_option(options, "feather", DEFAULT_FEATHER, 0, 256),
        max_side=_int_option(options, "max_side", None, 32, 2048),
    )


def _int_option(options: dict[str, Any], name: str, default: int | None, lo: int, hi: int) -> Any:
    value = options.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise InvalidField(
            f"The fill option `{name}` must be a number of pixels from {lo} to {hi}.",
            field=f"options.{name}",
        )
    return int(round(value))


class FillEngine(Engine):
    name = "fill"

    def models(self) -> list[ModelInfo]:
        how = "shift-map / FSR inpainting" if HAS_XPHOTO else "Telea inpainting"
        return [
            ModelInfo(
                name="fill",
                engine=self.name,
                kinds=("inpaint",),
                family="opencv",
                size_bytes=0,
                description=f"Content-aware fill from the surrounding pixels (OpenCV {how}); "
                "no prompt, no weights.",
                defaults={
                    "method": DEFAULT_METHOD,
                    "grow": DEFAULT_GROW,
                    "feather": DEFAULT_FEATHER,
                },
            )
        ]

    def check(self, spec: JobSpec, model: ModelInfo, images: dict[str, Any]) -> None:
        for slot in ("image", "mask"):
            if images.get(slot) is None:
                raise InvalidField(
                    f"A fill job needs an `{slot}`: the picture and a mask of what to replace.",
                    field=slot,
                )
        if tuple(images["mask"]) != tuple(images["image"]):
            raise ImageMismatch(
                f"The mask is {_size(images['mask'])} but the image is {_size(images['image'])}; "
                "they must be the same size.",
                field="mask",
            )
        parse_options(spec.options)

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        # 0. check inputs
        if job.image is None or job.mask is None:
            slot = "image" if job.image is None else "mask"
            raise InvalidField("A fill job needs an `image` and a `mask`.", field=slot)
        image, mask = job.image, _gray(job.mask)
        height, width = image.shape[:2]
        if mask.shape != (height, width):
            raise ImageMismatch(
                f"The mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}; "
                "they must be the same size.",
                field="mask",
            )
        opts = parse_options(job.spec.options)
        ctx.check_cancelled()
        wanted = mask > 0
        if not wanted.any():
            ctx.progress(1, 1)
            return EngineResult([EngineOutput(image.copy())], {"fill": {"regions": 0}})
        if wanted.all():
            raise InvalidField(
                "The mask covers the whole image, so there is nothing around it to fill from; "
                "leave some of the picture unmasked.",
                field="mask",
            )

        # 1. grow the mask and find the boxes to inpaint
        hole = _grow(wanted, opts.grow)
        if hole.all():  # growing swallowed the context: fill exactly what was asked
            hole = wanted
        boxes = _region_boxes(hole, opts.margin, opts.feather)
        total = len(boxes)
        ctx.progress(0, total)

        # 2. inpaint each box and paste it back through the feathered mask
        out = image.copy()
        rgb = np.ascontiguousarray(image[..., :3])
        scales = []
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            crop_hole = hole[y0:y1, x0:x1]
            fill, scale = _inpaint(rgb[y0:y1, x0:x1], crop_hole, opts)
            alpha = _feathered(crop_hole, mask[y0:y1, x0:x1], opts.feather)
            out[y0:y1, x0:x1, :3] = _blend(rgb[y0:y1, x0:x1], fill, alpha)
            scales.append(round(scale, 3))
            ctx.progress(i + 1, total)
        meta = {"method": opts.method, "regions": len(boxes), "work_scale": float(min(scales))}
        return EngineResult([EngineOutput(out)], {"fill": meta})


def _size(wh: Any) -> str:
    return f"{wh[0]}x{wh[1]}"


def _gray(mask: np.ndarray) -> np.ndarray:
    """The engine contract gives H x W; tolerate an RGB(A) mask by taking its brightest channel."""
    return mask if mask.ndim == 2 else mask[..., :3].max(axis=2)


def _grow(wanted: np.ndarray, grow: int) -> np.ndarray:
    """Dilate by ``grow`` px with a round kernel, working only on the mask's bounding box."""
    if grow <= 0:
        return wanted
    ys, xs = np.nonzero(wanted)
    h, w = wanted.shape
    y0, y1 = max(0, ys.min() - grow), min(h, ys.max() + grow + 1)
    x0, x1 = max(0, xs.min() - grow), min(w, xs.max() + grow + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    grown = np.zeros_like(wanted)
    part = cv2.dilate(wanted[y0:y1, x0:x1].astype(np.uint8), kernel)
    grown[y0:y1, x0:x1] = part > 0
    return grown


def _region_boxes(
    hole: np.ndarray, margin: int | None, feather: int
) -> list[tuple[int, int, int, int]]:
    """One box (x0, y0, x1, y1) per group of masked pixels whose context boxes overlap.

    Separate regions are filled separately so two small spots far apart do not become one huge
    box (which would be filled at a lower resolution).
    """
    h, w = hole.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    boxes = []
    for x, y, bw, bh, _area in stats[1:]:
        pad = margin if margin is not None else max(MIN_MARGIN, max(bw, bh) // 2)
        pad = max(pad, feather + 2)  # the feather ramp needs unmasked pixels inside the box
        boxes.append([max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)])
    merged = _merge_overlapping(boxes)
    if len(merged) > MAX_REGIONS:
        merged = [
            [min(b[0] for b in merged), min(b[1] for b in merged)]
            + [max(b[2] for b in merged), max(b[3] for b in merged)]
        ]
    return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in merged]


def _merge_overlapping(boxes: list[list[int]]) -> list[list[int]]:
    changed = True
    while changed:
        changed = False
        result: list[list[int]] = []
        for box in boxes:
            for other in result:
                if (
                    box[0] < other[2]
                    and other[0] < box[2]
                    and box[1] < other[3]
                    and other[1] < box[3]
                ):
                    other[:] = [min(box[0], other[0]), min(box[1], other[1])] + [
                        max(box[2], other[2]),
                        max(box[3], other[3]),
                    ]
                    changed = True
                    break
            else:
                result.append(list(box))
        boxes = result
    return boxes


def _inpaint(rgb: np.ndarray, hole: np.ndarray, opts: FillOptions) -> tuple[np.ndarray, float]:
    """Fill ``hole`` in ``rgb`` (a crop), at a reduced size if the crop is over the method's budget."""
    h, w = hole.shape
    method = opts.method
    scale = min(1.0, opts.work_side / max(h, w), (opts.hole_budget / max(1, hole.sum())) ** 0.5)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        # any masked pixel under a small pixel masks it, so no object colour leaks into the fill
        small_hole = cv2.resize(hole.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) > 0
    else:
        small, small_hole = np.ascontiguousarray(rgb), hole
    valid = np.where(small_hole, 0, 255).astype(np.uint8)
    filled = np.zeros_like(small)
    if method == "shiftmap":
        # shift-map compares colours in an intensity + two colour channels space such as Lab
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2Lab)
        cv2.xphoto.inpaint(lab, valid, filled, cv2.xphoto.INPAINT_SHIFTMAP)
        filled = cv2.cvtColor(filled, cv2.COLOR_Lab2RGB)
    elif method in ("fsr-fast", "fsr-best"):
        kind = cv2.xphoto.INPAINT_FSR_FAST if method == "fsr-fast" else cv2.xphoto.INPAINT_FSR_BEST
        cv2.xphoto.inpaint(small, valid, filled, kind)
    else:
        filled = cv2.inpaint(small, 255 - valid, 5, cv2.INPAINT_TELEA)
    # known pixels stay the originals, so scaling up interpolates between true context and fill
    filled[~small_hole] = small[~small_hole]
    if scale < 1.0:
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
    return filled, float(scale)


def _feathered(hole: np.ndarray, mask: np.ndarray, feather: int) -> np.ndarray:
    """Blend weight in [0, 1]: 0 outside the grown mask, a smooth ramp ``feather`` px wide
    inside its edge, and never less than the request's own (possibly soft) mask."""
    if feather > 0:
        dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
        t = np.clip(dist / feather, 0.0, 1.0)
        ramp = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible kink where the ramp ends
    else:
        ramp = hole.astype(np.float32)
    return np.maximum(ramp, mask.astype(np.float32) / 255.0) * hole


def _blend(rgb: np.ndarray, fill: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    mixed = rgb.astype(np.float32) * (1.0 - a) + fill.astype(np.float32) * a
    mixed = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return np.where(a > 0, mixed, rgb)  # exact input wherever the weight is 0
