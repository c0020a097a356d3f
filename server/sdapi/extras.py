"""``extra-single-image`` and ``extra-batch-images``: A1111's "Extras" upscaling, as brushlink
``upscale`` jobs.

``upscaler_1`` names a model that serves the kind ``upscale`` (``GET /upscalers`` lists them);
``"None"`` returns the picture as it came, as A1111 does. The factor (``upscaling_resize``, or
the one that reaches ``upscaling_resize_w`` x ``_h``) becomes the smallest scale the model has
that reaches it, and the result is resized to the exact size asked for (cropped to it when
``upscaling_crop``). A name the server does not have is answered as A1111 answers it: 400,
"Invalid upscaler, needs to be one of these: ...".
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import cv2
import numpy as np

from brushlink.plugin.capabilities import ModelCard
from brushlink.plugin.errors import BrushlinkError, InvalidField
from brushlink.plugin.frames import to_png
from brushlink.plugin.request import Job, Request, UpscaleParams

from . import codec
from .schema import Extras

if TYPE_CHECKING:
    from ..app import App
    from .facade import Facade


class InvalidUpscaler(InvalidField):
    """An ``upscaler_1`` the server does not have (status 400, as A1111 answers it)."""

    code = "unsupported"


def upscalers(app: App) -> list[ModelCard]:
    return [m for m in app.registry.models() if "upscale" in m.kinds]


def target_size(body: Extras, width: int, height: int) -> tuple[int, int]:
    if body.resize_mode == 1:
        return body.upscaling_resize_w, body.upscaling_resize_h
    return max(1, round(width * body.upscaling_resize)), max(
        1, round(height * body.upscaling_resize)
    )


def fit(png: bytes, size: tuple[int, int], crop: bool) -> bytes:
    """The upscaled picture at exactly the size asked for."""
    rgba = codec.decode(png, "result")
    height, width = rgba.shape[:2]
    if (width, height) == size:
        return png
    if crop:
        scale = max(size[0] / width, size[1] / height)
        cover = (max(size[0], round(width * scale)), max(size[1], round(height * scale)))
        rgba = cv2.resize(rgba, cover, interpolation=cv2.INTER_AREA)
        x, y = (cover[0] - size[0]) // 2, (cover[1] - size[1]) // 2
        rgba = rgba[y : y + size[1], x : x + size[0]]
    else:
        rgba = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    from ..images import encode_rgba

    return encode_rgba(np.ascontiguousarray(rgba))


class Upscaler:
    def __init__(self, app: App, facade: Facade) -> None:
        self.app = app
        self.facade = facade

    def choose(self, name: str) -> ModelCard | None:
        if name.strip().lower() in ("none", ""):
            return None
        found = upscalers(self.app)
        for card in found:
            if card.name == name or card.name.lower() == name.strip().lower():
                return card
        names = ", ".join(["None", *(c.name for c in found)])
        missing = (
            ""
            if found
            else (" This brushlink server has no upscale model installed; see docs/upscaling.md.")
        )
        raise InvalidUpscaler(
            f"Invalid upscaler, needs to be one of these: {names}.{missing}", field="upscaler_1"
        )

    async def run(self, body: Extras, images: list[str]) -> list[str]:
        """Every image upscaled (as one request of one job per image), as raw base64 PNG."""
        card = self.choose(body.upscaler_1)
        limits = self.app.config.limits
        pngs = await asyncio.to_thread(
            lambda: [codec.read_image(text, limits, "image") for text in images]
        )
        if card is None:
            return [codec.to_base64(png) for png in pngs]
        sizes = [codec.image_size(png, "image") for png in pngs]
        targets = [target_size(body, w, h) for w, h in sizes]
        jobs: list[Job] = []
        for png, (width, height), target in zip(pngs, sizes, targets, strict=True):
            factor = max(target[0] / width, target[1] / height)
            scales = sorted(card.accepts.scales) or [2]
            scale = next((s for s in scales if s >= factor - 1e-6), scales[-1])
            request = Request(kind="upscale", model=card.name, upscale=UpscaleParams(scale=scale))
            jobs.append(Job(request, image=png))
        outcomes, _ = await self.facade.run("extras", jobs)
        answers: list[str] = []
        for outcome, target in zip(outcomes, targets, strict=False):
            if isinstance(outcome, BrushlinkError):
                raise outcome
            data = to_png(outcome.images[0].data or b"")
            fitted = await asyncio.to_thread(fit, data, target, body.upscaling_crop)
            answers.append(codec.to_base64(fitted))
        return answers
