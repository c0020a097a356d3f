"""What the A1111 door lists and sets: models, samplers, upscalers, add-ons, options, png-info.

``sd-models`` lists the models that draw or redraw pictures (``generate``, ``inpaint``,
``style``), with no hashes (brushlink does not hash checkpoints: ``hash`` and ``sha256`` are
null) and the model's name as its file name (paths stay on the server). ``POST /options`` with
``sd_model_checkpoint`` switches the model the door's jobs use by default; other options are
accepted and ignored.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError

from brushlink.plugin import png as pure_png
from brushlink.plugin.capabilities import ModelCard
from brushlink.plugin.errors import UnknownModel
from brushlink.plugin.request import Request

from . import codec, samplers, schema, translate
from .extras import upscalers

if TYPE_CHECKING:
    from ..app import App
    from .facade import Facade

DRAWING = ("generate", "inpaint", "style")
EMPTY_LISTS = ("face-restorers", "prompt-styles", "hypernetworks", "realesrgan-models",
               "latent-upscale-modes")  # fmt: skip


def checkpoints(app: App) -> list[ModelCard]:
    found = [m for m in app.registry.models() if any(k in m.kinds for k in DRAWING)]
    return sorted(found, key=lambda m: "generate" not in m.kinds)  # stable: drawing ones first


def current_model(app: App, facade: Facade) -> str | None:
    if facade.model is not None:
        return facade.model
    card = translate.card_for(app.registry, Request(kind="generate", prompt="a"))
    return card.name if card else None


def add_routes(api: APIRouter, app: App, facade: Facade) -> None:
    @api.get("/sd-models")
    async def sd_models() -> list[dict[str, Any]]:
        app.rescan_models_if_stale()
        return [
            {"title": m.name, "model_name": m.name, "hash": None, "sha256": None,
             "filename": m.name, "config": None}
            for m in checkpoints(app)
        ]  # fmt: skip

    @api.post("/refresh-checkpoints")
    async def refresh_checkpoints() -> None:
        await asyncio.to_thread(app.registry.refresh)

    @api.get("/options")
    async def get_options() -> dict[str, Any]:
        return {
            "sd_model_checkpoint": current_model(app, facade),
            "sd_checkpoint_hash": None,
            "sd_vae": "Automatic",
            "samples_format": "png",
            "CLIP_stop_at_last_layers": 1,
            "eta_noise_seed_delta": 0,
            "sd_checkpoints_limit": 1,
        }

    @api.post("/options")
    async def set_options(request: HttpRequest) -> None:
        try:
            options = await request.json()
        except ValueError as exc:
            raise RequestValidationError(
                [{"loc": ["body"], "msg": "The body is not valid JSON.", "type": "json_invalid"}]
            ) from exc
        if not isinstance(options, dict):
            raise RequestValidationError(
                [{"loc": ["body"], "msg": "The body must be a JSON object.", "type": "dict_type"}]
            )
        title = options.get("sd_model_checkpoint")
        if isinstance(title, str) and title:
            name = translate.strip_hash(title)
            known = [m.name for m in checkpoints(app)]
            if name not in known:
                raise UnknownModel(
                    f"There is no model called `{name[:80]}`. Installed models: "
                    f"{', '.join(known) or 'none'}.",
                    field="sd_model_checkpoint",
                )
            facade.model = name

    @api.get("/samplers")
    async def get_samplers() -> list[dict[str, Any]]:
        return samplers.sampler_list()

    @api.get("/schedulers")
    async def get_schedulers() -> list[dict[str, Any]]:
        return samplers.schedule_list()

    @api.get("/upscalers")
    async def get_upscalers() -> list[dict[str, Any]]:
        none = {"name": "None", "model_name": None, "model_path": None, "model_url": None,
                "scale": 4.0}  # fmt: skip
        return [none] + [
            {"name": m.name, "model_name": m.name, "model_path": None, "model_url": None,
             "scale": float(max(m.accepts.scales or [1]))}
            for m in upscalers(app)
        ]  # fmt: skip

    def addons(kind: str) -> list[str]:
        return sorted(a.name for a in app.registry.addons() if a.type == kind)

    @api.get("/loras")
    async def loras() -> list[dict[str, Any]]:
        return [{"name": n, "alias": n, "path": n, "metadata": {}} for n in addons("lora")]

    @api.get("/sd-vae")
    async def sd_vae() -> list[dict[str, Any]]:
        return [{"model_name": n, "filename": n} for n in addons("vae")]

    @api.get("/embeddings")
    async def embeddings() -> dict[str, Any]:
        return {"loaded": {n: {} for n in addons("embedding")}, "skipped": {}}

    @api.get("/scripts")
    async def scripts() -> dict[str, list[str]]:
        return {"txt2img": [], "img2img": []}

    for path in EMPTY_LISTS:
        api.add_api_route(f"/{path}", _empty, methods=["GET"])

    @api.post("/png-info")
    async def png_info(request: HttpRequest) -> dict[str, Any]:
        _, body = await schema.parse(request, schema.PngInfo)
        data = await asyncio.to_thread(codec.from_base64, body.image, app.config.limits, "image")
        items = pure_png.read_text(data) if data.startswith(pure_png.SIGNATURE) else {}
        info = items.pop("parameters", "")
        parsed = translate.parse_infotext(info) if info else {}
        return {"info": info, "items": items, "parameters": parsed}


async def _empty() -> list[Any]:
    return []
