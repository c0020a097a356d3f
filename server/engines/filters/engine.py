"""Style filters without weights: OpenCV's non-photorealistic rendering, and colour transfer from a
reference picture.

Steps of one job:

    0. check inputs (also done by ``check`` before the job is queued)
    1. shrink the picture to the style's working size if it is larger
    2. apply the named style; scale the result back up
    3. recolour from the reference, if one was sent
    4. blend with the original by ``strength``; the input alpha channel is kept as it is
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from brushlink.plugin.capabilities import Accepts, ModelCard, Range
from brushlink.plugin.errors import InvalidField
from brushlink.plugin.request import Request

from ..base import Engine, EngineJob, EngineOutput, EngineResult, JobContext, Sizes
from ..kit.regions import limit_to_mask
from .colour_transfer import transfer_colours

HAS_OIL = hasattr(cv2, "xphoto") and hasattr(cv2.xphoto, "oilPainting")


# Each filter takes and returns BGR uint8, the channel order OpenCV's photo module assumes.


def _sketch(bgr: np.ndarray) -> np.ndarray:
    gray, _ = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _pencil_colour(bgr: np.ndarray) -> np.ndarray:
    _, colour = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
    return colour


def _watercolour(bgr: np.ndarray) -> np.ndarray:
    return cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)


def _oil(bgr: np.ndarray) -> np.ndarray:
    # brush size grows with the picture so strokes look alike on small and large images
    size = max(3, round(max(bgr.shape[:2]) / 150))
    if HAS_OIL:
        return cv2.xphoto.oilPainting(bgr, size, 1)
    return cv2.edgePreservingFilter(bgr, flags=cv2.RECURS_FILTER, sigma_s=60, sigma_r=0.4)


def _cartoon(bgr: np.ndarray, colours: int = 8) -> np.ndarray:
    smooth = cv2.edgePreservingFilter(bgr, flags=cv2.RECURS_FILTER, sigma_s=60, sigma_r=0.4)
    flat = _quantise(smooth, colours)
    gray = cv2.medianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 7)
    # dark ink lines where the picture is darker than its neighbourhood
    block = max(9, (max(bgr.shape[:2]) // 100) | 1)
    edges = cv2.adaptiveThreshold(
        gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 5
    )
    return np.where(edges[..., None] > 0, flat, 0).astype(np.uint8)


def _quantise(bgr: np.ndarray, colours: int) -> np.ndarray:
    """Reduce to ``colours`` flat colours: k-means on a fixed sample, then nearest centre."""
    pixels = bgr.reshape(-1, 3).astype(np.float32)
    if len(pixels) <= colours:  # a tiny picture already has no more colours than asked
        return bgr.copy()
    rng = np.random.default_rng(0)  # same picture, same palette
    sample = pixels[rng.choice(len(pixels), size=min(len(pixels), 20_000), replace=False)]
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, _, centres = cv2.kmeans(sample, colours, None, criteria, 2, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]  # bestLabels None: allowed, but not in the stubs
    # nearest centre per pixel, in chunks so a large picture does not build a huge distance array
    labels = np.empty(len(pixels), np.intp)
    for start in range(0, len(pixels), 1 << 18):
        part = pixels[start : start + (1 << 18)]
        labels[start : start + len(part)] = (
            ((part[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)
        )
    return np.rint(centres[labels]).astype(np.uint8).reshape(bgr.shape)


def _detail(bgr: np.ndarray) -> np.ndarray:
    return cv2.detailEnhance(bgr, sigma_s=10, sigma_r=0.15)


# name -> (filter, longest side it works at, scale back as a residual). The edge-preserving
# filters cost time in proportion to the pixels; at 2048 x 2048 stylization alone takes about
# 17 s on 2 busy cores, so most styles work at 1024 and their result is scaled back up. `detail`
# works up to 2048, and above that adds its scaled-up change to the full-size original, so the
# picture's finest detail is kept rather than blurred away.
STYLES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int, bool]] = {
    "sketch": (_sketch, 1024, False),
    "pencil-color": (_pencil_colour, 1024, False),
    "watercolor": (_watercolour, 1024, False),
    "oil": (_oil, 1024, False),
    "cartoon": (_cartoon, 1024, False),
    "detail": (_detail, 2048, True),
}


def check_style(request: Request, has_reference: bool) -> None:
    """A job needs a named style or a reference whose colours it takes (or both)."""
    if request.style is None and not has_reference:
        raise InvalidField(
            "Name a `style` (" + ", ".join(STYLES) + ") or send a `reference` image "
            "whose colours the picture should take.",
            field="style",
        )


class FiltersEngine(Engine):
    name = "filters"

    def models(self) -> list[ModelCard]:
        return [
            ModelCard(
                name="filters",
                engine=self.name,
                kinds=["style"],
                family="opencv",
                size_bytes=0,
                description="Style filters (OpenCV non-photorealistic rendering) and colour "
                "transfer from a reference image; no weights.",
                defaults={"strength": 1.0},
                accepts=Accepts(
                    strength=Range(0, 1),
                    styles=list(STYLES),
                    slots=["image", "mask", "reference"],
                ),
            )
        ]

    def check(self, request: Request, model: ModelCard, sizes: Sizes) -> None:
        check_style(request, sizes.get("reference") is not None)

    def run(self, job: EngineJob, ctx: JobContext) -> EngineResult:
        request, image = job.request, job.image
        assert image is not None  # the card requires it
        strength = 1.0 if request.strength is None else float(request.strength)
        total = 3
        ctx.progress(0, total)
        if strength == 0.0:
            ctx.progress(total, total)
            out = limit_to_mask(image, job.mask, image.copy(), request.inpaint.output)
            return EngineResult([EngineOutput(out)], {"style": request.style})
        rgb = np.ascontiguousarray(image[..., :3])
        alpha = image[..., 3]

        # 1-2. the named style, at its working size
        styled = rgb
        if request.style is not None:
            styled = _at_size(rgb, *STYLES[request.style])
        ctx.progress(1, total)

        # 3. the reference's colours
        if job.reference is not None:
            ref = job.reference
            styled = transfer_colours(
                styled, np.ascontiguousarray(ref[..., :3]), alpha, ref[..., 3]
            )
        ctx.progress(2, total)

        # 4. blend by strength, keep alpha, keep to the mask
        out = image.copy()
        if strength < 1.0:
            mixed = rgb.astype(np.float32) * (1.0 - strength) + styled.astype(np.float32) * strength
            styled = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        out[..., :3] = styled
        out = limit_to_mask(image, job.mask, out, request.inpaint.output)
        ctx.progress(total, total)
        meta = {
            "style": request.style,
            "reference": job.reference is not None,
            "strength": strength,
        }
        return EngineResult([EngineOutput(out)], meta)


def _at_size(
    rgb: np.ndarray,
    apply: Callable[[np.ndarray], np.ndarray],
    work_side: int,
    residual: bool,
) -> np.ndarray:
    """Run ``apply`` on ``rgb`` shrunk to ``work_side`` if it is larger, then scale back up:
    the result itself, or (``residual``) the original plus the scaled-up change."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    h, w = rgb.shape[:2]
    if max(h, w) <= work_side:
        return cv2.cvtColor(apply(bgr), cv2.COLOR_BGR2RGB)
    scale = work_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    styled = apply(small)
    if not residual:
        big = cv2.resize(styled, (w, h), interpolation=cv2.INTER_CUBIC)
        return cv2.cvtColor(big, cv2.COLOR_BGR2RGB)
    change: np.ndarray = styled.astype(np.float32) - small.astype(np.float32)
    change = cv2.resize(change, (w, h), interpolation=cv2.INTER_CUBIC)
    big = np.clip(np.rint(bgr.astype(np.float32) + change), 0, 255).astype(np.uint8)
    return cv2.cvtColor(big, cv2.COLOR_BGR2RGB)
