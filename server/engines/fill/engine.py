"""Content-aware fill without weights: PatchMatch with an edge colour correction by default.

The method is chosen by measurement (``brushlink bench fill-quality`` compares every candidate
of ``methods.py`` side by side on photos and textures). Steps of one job:

    1. the blend weight: the mask grown and feathered as the request's ``inpaint`` part says
       (``kit.regions``); split what it covers into regions, each with a box of context
    2. per region: fill the box's hole with the method (one progress step per region)
    3. paste the fill back through the weight: pixels beyond the grown mask keep their exact
       input values; the input alpha channel is kept as it is
"""

from __future__ import annotations

import cv2
import numpy as np

from brushlink.plugin.capabilities import Accepts, ModelCard, OptionSpec
from brushlink.plugin.errors import InvalidField
from brushlink.plugin.regions import DEFAULT_CONTEXT, Box

from ..base import Engine, EngineJob, EngineOutput, EngineResult, JobContext
from ..kit.regions import Region, blend_weight, edges, mask_bounds, paste, unchanged
from .methods import DEFAULT_METHOD, METHODS

MIN_MARGIN = 16  # px of context around a small region
MAX_REGIONS = 32  # more separate regions than this are filled as one box

FILL_ACCEPTS = Accepts(
    slots=["image", "mask"],
    options={
        "method": OptionSpec(
            "choice",
            choices=list(METHODS),
            default=DEFAULT_METHOD,
            description="The fill algorithm (see `brushlink bench fill-quality`).",
        )
    },
)


class FillEngine(Engine):
    name = "fill"

    def models(self) -> list[ModelCard]:
        return [
            ModelCard(
                name="fill",
                engine=self.name,
                kinds=["inpaint"],
                family="weight-free",
                size_bytes=0,
                description="Content-aware fill from the surrounding pixels (PatchMatch with "
                "an edge colour correction): removes what is under the mask; no prompt, no "
                "weights.",
                defaults={"method": DEFAULT_METHOD},
                accepts=FILL_ACCEPTS,
            )
        ]

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        image, mask, params = job.image, job.mask, job.request.inpaint
        assert image is not None and mask is not None  # the card requires both
        method = str(job.request.options.get("method", DEFAULT_METHOD))
        ctx.check_cancelled()
        bounds = mask_bounds(mask)
        if bounds is None:
            ctx.progress(1, 1)
            return EngineResult([EngineOutput(unchanged(image, params.output))], {"regions": 0})
        if (mask > 0).all():
            raise InvalidField(
                "The mask covers the whole image, so there is nothing around it to fill from; "
                "leave some of the picture unmasked.",
                field="mask",
            )

        # 1. the weight, and the boxes to fill
        grow, feather = edges(bounds, params)
        weight = blend_weight(mask, grow, feather)
        hole = weight > 0
        if hole.all():  # growing swallowed the context: fill exactly what was asked
            hole, weight = mask > 0, mask.astype(np.float32) / 255.0
        context = params.context if params.context is not None else DEFAULT_CONTEXT
        boxes = _region_boxes(hole, context, feather)
        total = len(boxes)
        ctx.progress(0, total)

        # 2. fill each box's hole
        fill = METHODS[method]
        filled = image.copy()
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            rgb = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
            filled[y0:y1, x0:x1, :3] = fill(rgb, hole[y0:y1, x0:x1], seed=job.seed)
            ctx.progress(i + 1, total)

        # 3. paste back through the weight
        height, width = mask.shape
        region = Region(Box(0, 0, width, height), weight, grow, feather)
        out = paste(image, region, filled, params.output)
        return EngineResult([EngineOutput(out)], {"fill": {"method": method, "regions": total}})


def _region_boxes(
    hole: np.ndarray, context: float, feather: int
) -> list[tuple[int, int, int, int]]:
    """One box (x0, y0, x1, y1) per group of masked pixels whose context boxes overlap.

    Separate regions are filled separately so two small spots far apart do not become one huge
    box (which would be filled at a lower resolution).
    """
    h, w = hole.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    boxes = []
    for x, y, bw, bh, _area in stats[1:]:
        pad = max(MIN_MARGIN, round(context * float(np.hypot(bw, bh))))
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
